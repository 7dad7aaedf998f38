{{/* Names and labels shared by every template. */}}

{{- define "sluice.name" -}}
{{- default "sluice-operator" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-operator: "sluice-operator" for the release "sluice". */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sluice.labels" -}}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: sluice
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sluice.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the installation's id. */}}
{{- define "sluice.installationSecret" -}}
{{- if .Values.installation.id -}}
{{- printf "%s-installation" (include "sluice.fullname" .) -}}
{{- else -}}
{{- .Values.installation.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* aws.quotas as SLUICE_AWS_QUOTAS: bucket=rate[/burst],... */}}
{{- define "sluice.quotas" -}}
{{- $pairs := list -}}
{{- range $bucket, $rate := . -}}
{{- $pairs = append $pairs (printf "%s=%v" $bucket $rate) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* Everything the operator does with pipelines, and nothing else: watch
  them, add and remove its finalizer (a patch), write their status (server-
  side apply) and publish Events. It reads no Secrets and creates no
  workloads: its AWS credentials come from the pod's environment. */}}
{{- define "sluice.pipelineRules" }}
  - apiGroups: [sluice.dev]
    resources: [datapipelines]
    verbs: [list, watch, patch]
  - apiGroups: [sluice.dev]
    resources: [datapipelines/status]
    verbs: [patch]
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
{{- end }}

{{/* What the schema cannot say: combinations of values. */}}
{{- define "sluice.validate" -}}
{{- $le := .Values.leaderElection -}}
{{- if and (gt (int .Values.replicaCount) 1) (not $le.enabled) -}}
{{- fail (printf "replicaCount: %d replicas need leaderElection.enabled: true (else every replica writes to AWS); set replicaCount: 1 to run without leader election" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if $le.enabled -}}
{{- $lease := int $le.leaseDurationSeconds -}}
{{- $renew := int $le.renewDeadlineSeconds -}}
{{- $margin := max 2 (div (add $lease 9) 10) -}}
{{- if gt (add $renew $margin) $lease -}}
{{- fail (printf "leaderElection.renewDeadlineSeconds (%d) must be less than leaseDurationSeconds (%d) by at least %d s (2 s and a tenth of the lease): the leader stops writing that long before another may take the lease" $renew $lease $margin) -}}
{{- end -}}
{{- if gt (mul 2 (int $le.retryPeriodSeconds)) $renew -}}
{{- fail (printf "leaderElection.retryPeriodSeconds (%d) must be at most half of renewDeadlineSeconds (%d): a failed renewal is tried again before the deadline" (int $le.retryPeriodSeconds) $renew) -}}
{{- end -}}
{{- end -}}
{{- if and (gt (int $le.shards) 1) (not $le.enabled) -}}
{{- fail (printf "leaderElection.shards: %d shards need leaderElection.enabled: true (each shard is held through a Lease)" (int $le.shards)) -}}
{{- end -}}
{{- if and .Values.aws.requireAccountRole (not .Values.aws.accountRoles) -}}
{{- fail "aws.requireAccountRole: true needs aws.accountRoles: with no role to assume, no pipeline could be placed in any account" -}}
{{- end -}}
{{- if and .Values.installation.id (ne .Values.installation.existingSecret "sluice-installation") -}}
{{- fail "installation: set either id (the chart makes the Secret) or existingSecret, not both" -}}
{{- end -}}
{{- end -}}
