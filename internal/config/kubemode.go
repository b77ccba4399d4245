package config

import (
	"fmt"
	"strconv"
)

// kubeMode is --kubernetes: true, false or auto, and like a boolean flag it
// may be given bare (--kubernetes means true), so that
// `--kubernetes --kubeconfig FILE` works.
type kubeMode struct{ p *string }

func (k *kubeMode) String() string {
	if k == nil || k.p == nil {
		return ""
	}
	return *k.p
}

func (k *kubeMode) Set(s string) error {
	if s == "auto" {
		*k.p = s
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true, false or auto")
	}
	*k.p = strconv.FormatBool(b)
	return nil
}

// IsBoolFlag lets the flag package accept the bare form.
func (k *kubeMode) IsBoolFlag() bool { return true }

// joinModeArgs turns "--kubernetes auto" (a value in the next argument, as
// older invocations and the usual "--flag value" habit write it) into
// "--kubernetes=auto": a boolean-like flag would otherwise stop at the bare
// form and leave "auto" as a stray argument.
func joinModeArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if (a == "--kubernetes" || a == "-kubernetes") && i+1 < len(args) && isMode(args[i+1]) {
			out = append(out, a+"="+args[i+1])
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

func isMode(s string) bool {
	switch s {
	case "true", "false", "auto":
		return true
	}
	return false
}
