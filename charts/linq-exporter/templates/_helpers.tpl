{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "linq-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's object name. */}}
{{- define "linq-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "linq-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "linq-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "linq-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "linq-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "linq-exporter.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/* The Secret holding the API key: the chart's when apiKey.value is set, else the existing one. */}}
{{- define "linq-exporter.apiKeySecret" -}}
{{- if .Values.apiKey.value }}
{{- printf "%s-api-key" (include "linq-exporter.fullname" .) }}
{{- else if .Values.apiKey.existingSecret }}
{{- .Values.apiKey.existingSecret }}
{{- else }}
{{- fail "set apiKey.existingSecret (a Secret you created) or apiKey.value (--set-file apiKey.value=./linq-api-key.txt)" }}
{{- end }}
{{- end }}

{{- define "linq-exporter.webhookSecret" -}}
{{- if .Values.webhook.signingSecret }}
{{- printf "%s-webhook" (include "linq-exporter.fullname" .) }}
{{- else if .Values.webhook.existingSecret }}
{{- .Values.webhook.existingSecret }}
{{- else }}
{{- fail "webhook.enabled: set webhook.existingSecret or webhook.signingSecret" }}
{{- end }}
{{- end }}
