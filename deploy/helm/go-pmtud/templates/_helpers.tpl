{{- define "go-pmtud.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "go-pmtud.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "go-pmtud.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "go-pmtud.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "go-pmtud.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "go-pmtud.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "go-pmtud.selectorLabels" -}}
app.kubernetes.io/name: {{ include "go-pmtud.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "go-pmtud.labels" -}}
{{ include "go-pmtud.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
go-pmtud.options maps each flag to its value; go-pmtud.env turns the set ones
into PMTUD_<FLAG> variables, so an unset value keeps the binary's default.
*/}}
{{- define "go-pmtud.env" -}}
{{- $v := .Values -}}
{{- $r := $v.rateLimits -}}
{{- /* An unquoted false is a bool: pass it, do not drop it (dropping means auto). */ -}}
{{- $kube := $v.kubernetes.enabled -}}
{{- if kindIs "bool" $kube }}{{ $kube = toString $kube }}{{ end -}}
{{- $opts := dict
  "kubernetes" $kube
  "node-address-type" $v.kubernetes.nodeAddressType
  "node-selector" $v.kubernetes.peerSelector
  "kubeconfig" $v.kubernetes.kubeconfig
  "peers" $v.peers
  "transport" $v.transport
  "iface" $v.iface
  "ttl" $v.ttl
  "nflog-group" $v.nflogGroup
  "firewall" $v.firewall
  "tunnel-port" $v.tunnel.port
  "tunnel-device" $v.tunnel.device
  "tunnel-key-file" (include "go-pmtud.tunnelKeyFile" .)
  "tunnel-insecure" $v.tunnel.insecure
  "capture-rate" $v.capture.rate
  "capture-burst" $v.capture.burst
  "capture-source-rate" $v.capture.sourceRate
  "capture-buffer" $v.capture.buffer
  "ignore-networks" $v.ignoreNetworks
  "relay-for" $v.relayFor
  "ports" $v.ports
  "strict" $v.strict
  "dry-run" $v.dryRun
  "dedup-window" $r.dedupWindow
  "flow-rate" $r.flowRate
  "flow-burst" $r.flowBurst
  "source-rate" $r.sourceRate
  "source-burst" $r.sourceBurst
  "global-rate" $r.globalRate
  "global-burst" $r.globalBurst
  "metrics-port" $v.metrics.port
  "metrics-address" $v.metrics.address
  "health-port" $v.health.port
  "health-address" $v.health.address
  "log-format" $v.log.format
  "log-level" $v.log.level
-}}
{{- range $flag, $val := $opts }}
{{- $s := "" }}
{{- if kindIs "slice" $val }}{{ $s = join "," $val }}
{{- else if kindIs "float64" $val }}{{ if eq $val (floor $val) }}{{ $s = printf "%.0f" $val }}{{ else }}{{ $s = toString $val }}{{ end }}
{{- else if kindIs "bool" $val }}{{ if $val }}{{ $s = "true" }}{{ end }}
{{- else if not (kindIs "invalid" $val) }}{{ $s = toString $val }}
{{- end }}
{{- if ne $s "" }}
- name: PMTUD_{{ $flag | upper | replace "-" "_" }}
  value: {{ $s | quote }}
{{- end }}
{{- end }}
{{- end -}}


{{/*
go-pmtud.tunnel is "true" when the daemon will run the tunnel transport,
whether from .Values.transport, extraArgs or extraEnv, so that /dev/net/tun is
mounted whichever way it was chosen.
*/}}
{{- define "go-pmtud.tunnel" -}}
{{- $t := eq .Values.transport "tunnel" -}}
{{- if regexMatch "(^| )--?transport(=| )tunnel( |$)" (join " " (.Values.extraArgs | default list)) }}{{ $t = true }}{{ end -}}
{{- range .Values.extraEnv }}{{ if and (eq .name "PMTUD_TRANSPORT") (eq (toString .value) "tunnel") }}{{ $t = true }}{{ end }}{{ end -}}
{{- toString $t -}}
{{- end -}}

{{/*
go-pmtud.nodeEnv: listeners on the node's own address (the downward API's
status.hostIP) unless an address is given, and GOMEMLIMIT from the
container's memory limit unless extraEnv sets it.
*/}}
{{- define "go-pmtud.nodeEnv" -}}
{{- if not .Values.metrics.address }}
- name: PMTUD_METRICS_ADDRESS
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
{{- end }}
{{- if not .Values.health.address }}
- name: PMTUD_HEALTH_ADDRESS
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
{{- end }}
{{- $memlimit := true }}
{{- range .Values.extraEnv }}{{ if eq .name "GOMEMLIMIT" }}{{ $memlimit = false }}{{ end }}{{ end }}
{{- if $memlimit }}
- name: GOMEMLIMIT
  valueFrom:
    resourceFieldRef:
      containerName: go-pmtud
      resource: limits.memory
{{- end }}
{{- end -}}

{{/*
The tunnel's key Secret: the operator's, or the one the chart creates. Empty
when the tunnel is not used or runs insecure.
*/}}
{{- define "go-pmtud.tunnelSecret" -}}
{{- if and (eq (include "go-pmtud.tunnel" .) "true") (not .Values.tunnel.insecure) -}}
{{- .Values.tunnel.existingSecret | default (printf "%s-tunnel" (include "go-pmtud.fullname" .)) -}}
{{- end -}}
{{- end -}}

{{- define "go-pmtud.tunnelKeyFile" -}}
{{- if include "go-pmtud.tunnelSecret" . -}}/etc/go-pmtud/tunnel/tunnel.keys{{- end -}}
{{- end -}}
