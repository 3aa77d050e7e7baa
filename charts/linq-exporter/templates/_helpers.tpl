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

{{/* The number of shards: the StatefulSet's replicas and LINQ_EXPORTER_TOTAL_SHARDS alike. */}}
{{- define "linq-exporter.shards" -}}
{{- $n := int .Values.sharding.shards }}
{{- if lt $n 2 }}
{{- fail "sharding.enabled: sharding.shards must be 2 or more" }}
{{- end }}
{{- $n }}
{{- end }}

{{/* The StatefulSet's headless governing Service, within the 63 characters of a DNS label. */}}
{{- define "linq-exporter.shardsService" -}}
{{- printf "%s-shards" (include "linq-exporter.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}

{{/* The exporter's pod template, shared by the Deployment and (sharding.enabled) the
  StatefulSet: one place for the hardening, probes, resources and Secret mounts. Under sharding
  it adds the shard variables. Include it with `nindent 4` under `template:`. */}}
{{- define "linq-exporter.podTemplate" -}}
metadata:
  labels:
    {{- include "linq-exporter.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- /* Restart on a changed chart-managed Secret (existing Secrets are re-read as files). */}}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    seccompProfile:
      type: RuntimeDefault
    # Group of the mounted Secret files (mode 0440), so uid 65532 can read them.
    fsGroup: 65532
  containers:
    - name: linq-exporter
      image: {{ include "linq-exporter.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      {{- with .Values.extraArgs }}
      args:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      env:
        # Read from the mounted Secret at every sweep: a rotated Secret needs no restart.
        - name: LINQ_API_V3_API_KEY_FILE
          value: /var/run/secrets/linq/api-key
        - name: LINQ_EXPORTER_POLL_INTERVAL
          value: {{ .Values.pollInterval | quote }}
        - name: LINQ_EXPORTER_LISTEN_ADDRESS
          value: "0.0.0.0:{{ .Values.service.port }}"
        - name: LINQ_EXPORTER_LOG_FORMAT
          value: {{ .Values.logFormat | quote }}
        - name: LINQ_EXPORTER_LOG_LEVEL
          value: {{ .Values.logLevel | quote }}
        {{- with .Values.fromNumbers }}
        - name: LINQ_EXPORTER_FROM
          value: {{ join "," . | quote }}
        {{- end }}
        {{- if .Values.sharding.enabled }}
        {{- if not .Values.fromNumbers }}
        # Sharding splits a list of numbers: here every number GET /v3/phone_numbers lists (with
        # fromNumbers set, that list, given whole to every pod; each keeps its part).
        - name: LINQ_EXPORTER_DISCOVER_NUMBERS
          value: "true"
        {{- end }}
        # This pod's shard: its ordinal (<release>-0 is shard 0), which the StatefulSet controller
        # puts in the pod label apps.kubernetes.io/pod-index (Kubernetes >= 1.28).
        - name: LINQ_EXPORTER_SHARD
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        # The StatefulSet's replicas: both come from sharding.shards, so they cannot differ.
        - name: LINQ_EXPORTER_TOTAL_SHARDS
          value: {{ include "linq-exporter.shards" . | quote }}
        {{- end }}
        {{- if .Values.webhook.enabled }}
        - name: LINQ_EXPORTER_WEBHOOK_LISTEN_ADDRESS
          value: "0.0.0.0:{{ .Values.webhook.port }}"
        - name: LINQ_EXPORTER_WEBHOOK_PATH
          value: {{ .Values.webhook.path | quote }}
        - name: LINQ_WEBHOOK_SIGNING_SECRET_FILE
          value: /var/run/secrets/linq-webhook/signing-secret
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: metrics
          containerPort: {{ .Values.service.port }}
          protocol: TCP
        {{- if .Values.webhook.enabled }}
        - name: webhook
          containerPort: {{ .Values.webhook.port }}
          protocol: TCP
        {{- end }}
      # /healthz: the process and its poller are alive. /readyz: a complete sweep succeeded
      # and its data is fresh (503 before the first sweep and when the data is stale).
      startupProbe:
        httpGet:
          path: /healthz
          port: metrics
        periodSeconds: 2
        timeoutSeconds: 2
        failureThreshold: 30
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        periodSeconds: 20
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        privileged: false
        capabilities:
          drop: ["ALL"]
        seccompProfile:
          type: RuntimeDefault
      volumeMounts:
        # The directory, never a subPath: subPath mounts are not updated on rotation.
        - name: linq-api-key
          mountPath: /var/run/secrets/linq
          readOnly: true
        {{- if .Values.webhook.enabled }}
        - name: linq-webhook-secret
          mountPath: /var/run/secrets/linq-webhook
          readOnly: true
        {{- end }}
  volumes:
    - name: linq-api-key
      secret:
        secretName: {{ include "linq-exporter.apiKeySecret" . }}
        defaultMode: 0440
        items:
          - key: {{ .Values.apiKey.secretKey }}
            path: api-key
    {{- if .Values.webhook.enabled }}
    - name: linq-webhook-secret
      secret:
        secretName: {{ include "linq-exporter.webhookSecret" . }}
        defaultMode: 0440
        items:
          - key: {{ .Values.webhook.secretKey }}
            path: signing-secret
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
