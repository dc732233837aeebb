{{/* The name of the chart's objects. */}}
{{- define "millrace.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The labels of every object. */}}
{{- define "millrace.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The labels that select the serve pods. */}}
{{- define "millrace.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: serve
{{- end -}}

{{- define "millrace.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "millrace.databaseSecret" -}}
{{ .Values.database.existingSecret | default (printf "%s-database" (include "millrace.fullname" .)) }}
{{- end -}}

{{- define "millrace.passwordsSecret" -}}
{{ .Values.passwords.existingSecret | default (printf "%s-passwords" (include "millrace.fullname" .)) }}
{{- end -}}

{{/* The environment of serve and of the set-up Job. */}}
{{- define "millrace.env" -}}
- name: MILLRACE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "millrace.databaseSecret" . }}
      key: {{ .Values.database.existingSecretKey }}
{{- range $env, $key := dict "MILLRACE_UI_PASSWORD" "ui-password" "MILLRACE_DS_USER_PASSWORD" "ds-user-password" "MILLRACE_MLE_USER_PASSWORD" "mle-user-password" "MILLRACE_ANALYTICS_PASSWORD" "analytics-password" }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "millrace.passwordsSecret" $ }}
      key: {{ $key }}
      optional: true
{{- end }}
- name: MILLRACE_HTTP_ADDR
  value: ":{{ .Values.service.port }}"
{{- with .Values.publicURL }}
- name: MILLRACE_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
- name: MILLRACE_ALLOWED_HOSTS
  value: {{ concat (list (include "millrace.fullname" .) (printf "%s.%s" (include "millrace.fullname" .) .Release.Namespace) (printf "%s.%s.svc" (include "millrace.fullname" .) .Release.Namespace) (printf "%s.%s.svc.cluster.local" (include "millrace.fullname" .) .Release.Namespace)) .Values.allowedHosts | join "," | quote }}
{{- range $name, $value := .Values.settings }}
{{- if not (hasPrefix "MILLRACE_" $name) }}{{ fail (printf "settings.%s: settings are MILLRACE_* variables" $name) }}{{ end }}
{{- if has $name (list "MILLRACE_DATABASE_URL" "MILLRACE_UI_PASSWORD" "MILLRACE_DS_USER_PASSWORD" "MILLRACE_MLE_USER_PASSWORD" "MILLRACE_ANALYTICS_PASSWORD" "MILLRACE_HTTP_ADDR" "MILLRACE_PUBLIC_URL" "MILLRACE_ALLOWED_HOSTS") }}{{ fail (printf "settings.%s: set it with its own value (database, passwords, service.port, publicURL, allowedHosts)" $name) }}{{ end }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}
