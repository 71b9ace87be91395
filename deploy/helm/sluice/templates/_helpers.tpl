{{/* Names and labels. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where the chart puts files inside the pod. */}}
{{- define "sluice.issuerKeyPath" -}}/var/lib/sluice/issuer/issuer.pem{{- end -}}
{{- define "sluice.poolSecretDir" -}}/etc/sluice/secrets/pool{{- end -}}

{{/* Pool credential values -> Secret keys (pool-<file>) and file names. */}}
{{- define "sluice.poolCredentialFiles" -}}
{{- $c := .Values.pool.credentials | default dict -}}
{{- $files := dict -}}
{{- if $c.username }}{{ $_ := set $files "username" $c.username }}{{ end -}}
{{- if $c.password }}{{ $_ := set $files "password" $c.password }}{{ end -}}
{{- if $c.caCert }}{{ $_ := set $files "ca.pem" $c.caCert }}{{ end -}}
{{- if $c.clientCert }}{{ $_ := set $files "cert.pem" $c.clientCert }}{{ end -}}
{{- if $c.clientKey }}{{ $_ := set $files "key.pem" $c.clientKey }}{{ end -}}
{{- toJson $files -}}
{{- end -}}

{{/*
Port checks: every broker port must be a valid port, distinct from the bootstrap,
admin and TLS ports (a clash would make the gateway fail to bind at start).
*/}}
{{- define "sluice.checkPorts" -}}
{{- $reserved := list (int .Values.ports.bootstrap) (int .Values.ports.admin) -}}
{{- if .Values.tls.enabled }}{{ $reserved = append $reserved (int .Values.ports.tls) }}{{ end -}}
{{- if not .Values.brokerIds }}{{ fail "brokerIds must list the pool's broker node ids" }}{{ end -}}
{{- range .Values.brokerIds -}}
{{- $p := int (add (int $.Values.ports.brokerBase) (int .)) -}}
{{- if or (lt (int .) 0) (gt $p 65535) }}{{ fail (printf "broker id %v: port %d (ports.brokerBase + id) is not a valid port" . $p) }}{{ end -}}
{{- if has $p $reserved }}{{ fail (printf "broker id %v: port %d clashes with the bootstrap, admin or TLS port" . $p) }}{{ end -}}
{{- end -}}
{{- end -}}

{{/*
sluice.toml from values: .Values.config, then the keys the chart owns on top.
*/}}
{{- define "sluice.configToml" -}}
{{- include "sluice.checkPorts" . -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $listener := dict "bind_host" "0.0.0.0" "advertised_host" (required "advertisedHost is required: the name clients reach the Kafka Service by" .Values.advertisedHost) "bootstrap_port" (int .Values.ports.bootstrap) "broker_port_base" (int .Values.ports.brokerBase) -}}
{{- $_ := set $listener "drain_timeout_ms" (mul (int .Values.drainTimeoutSeconds) 1000) -}}
{{- $_ := set $cfg "listener" (mergeOverwrite (get $cfg "listener" | default dict) $listener) -}}
{{- if not .Values.pool.bootstrap }}{{ fail "pool.bootstrap is required: host:port of one or more pool brokers" }}{{ end -}}
{{- $_ := set $cfg "pool" (mergeOverwrite (get $cfg "pool" | default dict) (dict "bootstrap" .Values.pool.bootstrap)) -}}
{{- $_ := set $cfg "admin" (mergeOverwrite (get $cfg "admin" | default dict) (dict "bind" (printf "0.0.0.0:%d" (int .Values.ports.admin)))) -}}
{{- if .Values.issuer.enabled -}}
{{- $issuer := dict "url" (required "issuer.url is required when issuer.enabled: the base URL clients fetch tokens from" .Values.issuer.url) "audience" .Values.issuer.audience "key_file" (include "sluice.issuerKeyPath" .) "token_ttl_secs" (int .Values.issuer.tokenTtlSecs) -}}
{{- $_ := set $cfg "issuer" (mergeOverwrite (get $cfg "issuer" | default dict) $issuer) -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- $tls := dict "port" (int .Values.ports.tls) "domain" (required "tls.domain is required when tls.enabled" .Values.tls.domain) "cert_file" "/etc/sluice/tls/tls.crt" "key_file" "/etc/sluice/tls/tls.key" -}}
{{- $_ := set $cfg "tls" (mergeOverwrite (get $cfg "tls" | default dict) $tls) -}}
{{- end -}}
# sluice.toml rendered by the sluice Helm chart ({{ .Chart.Name }}-{{ .Chart.Version }}).
# Keys: docs/operations.md. Change them through the chart's values (config.*).
{{ include "sluice.toml" $cfg }}
{{- end -}}

{{/* A map of TOML tables (section -> key -> value). */}}
{{- define "sluice.toml" -}}
{{- range $section, $body := . }}
{{- if not (kindIs "map" $body) }}{{ fail (printf "config.%s must be a table (a map of keys)" $section) }}{{ end }}
[{{ $section }}]
{{- range $k, $v := $body }}
{{ $k }} = {{ include "sluice.tomlValue" (dict "v" $v "path" (printf "config.%s.%s" $section $k)) }}
{{- end }}
{{ end }}
{{- end -}}

{{/* One TOML value: string, bool, integer, float, array or inline table. */}}
{{- define "sluice.tomlValue" -}}
{{- $v := .v -}}
{{- if kindIs "string" $v -}}
{{- toJson $v -}}
{{- else if kindIs "bool" $v -}}
{{- $v -}}
{{- else if kindIs "float64" $v -}}
{{- if eq $v (floor $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) -}}
{{- $v -}}
{{- else if kindIs "slice" $v -}}
[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "sluice.tomlValue" (dict "v" $e "path" $.path) }}{{ end }}]
{{- else if kindIs "map" $v -}}
{{- $first := true -}}
{ {{- range $k, $e := $v }}{{ if not $first }},{{ end }} {{ $k }} = {{ include "sluice.tomlValue" (dict "v" $e "path" (printf "%s.%s" $.path $k)) }}{{ $first = false }}{{ end }} }
{{- else -}}
{{- fail (printf "%s: a null or unsupported value (%s) cannot be written to TOML" .path (kindOf $v)) -}}
{{- end -}}
{{- end -}}
