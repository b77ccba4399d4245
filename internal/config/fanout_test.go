package config

import "testing"

func TestFrameBudgetAndTargetedFanoutOptions(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.TargetedFanout || c.Policy.GlobalFrameRate != 40000 || c.Policy.GlobalFrameBurst != 10000 {
		t.Fatalf("defaults: targeted=%v frame rate %v burst %d", c.TargetedFanout, c.Policy.GlobalFrameRate, c.Policy.GlobalFrameBurst)
	}
	c, err = parse(t, map[string]string{"PMTUD_TARGETED_FANOUT": "false", "PMTUD_GLOBAL_FRAME_RATE": "9000"}, "--global-frame-burst", "6000")
	if err != nil {
		t.Fatal(err)
	}
	if c.TargetedFanout || c.Policy.GlobalFrameRate != 9000 || c.Policy.GlobalFrameBurst != 6000 {
		t.Fatalf("parsed: targeted=%v frame rate %v burst %d", c.TargetedFanout, c.Policy.GlobalFrameRate, c.Policy.GlobalFrameBurst)
	}
	if _, err := parse(t, nil, "--global-frame-burst", "0"); err == nil {
		t.Fatal("a zero frame burst was accepted")
	}
}
