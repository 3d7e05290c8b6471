{{/* Names, labels and derived settings shared by the templates. */}}

{{- define "controlplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "controlplane.fullname" -}}
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

{{- define "controlplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "controlplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "controlplane.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "controlplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: controlplane
{{- end -}}

{{- define "controlplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "controlplane.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "controlplane.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* "true" when leader election is on: forced by leaderElection.enabled, else replicas > 1. */}}
{{- define "controlplane.leaderElect" -}}
{{- if kindIs "bool" .Values.leaderElection.enabled -}}
{{- .Values.leaderElection.enabled -}}
{{- else -}}
{{- gt (int .Values.replicas) 1 -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the controller watches; fails in namespaced scope without any. */}}
{{- define "controlplane.checkScope" -}}
{{- if and (eq .Values.rbac.scope "namespaced") (empty .Values.watchNamespaces) -}}
{{- fail "rbac.scope=namespaced needs watchNamespaces: the namespaces whose ModelCanaries the controller manages" -}}
{{- end -}}
{{- end -}}

{{/* --git-namespace: gitSource.namespace, else the first watched namespace (namespaced scope),
else default. */}}
{{- define "controlplane.gitNamespace" -}}
{{- if .Values.gitSource.namespace -}}
{{- .Values.gitSource.namespace -}}
{{- else if eq .Values.rbac.scope "namespaced" -}}
{{- first .Values.watchNamespaces -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/* The git source is set through gitSource (so that its RBAC follows), and consistently. */}}
{{- define "controlplane.checkGitSource" -}}
{{- range .Values.controller.extraArgs -}}
{{- if or (hasPrefix "--git-repo" .) (hasPrefix "--git-prune" .) -}}
{{- fail (printf "controller.extraArgs has %s: set gitSource.repo (and gitSource.prune) instead, so that the RBAC grants what the git source does" .) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.gitSource.tokenSecret.name .Values.gitSource.sshKeySecret.name -}}
{{- fail "gitSource.tokenSecret and gitSource.sshKeySecret exclude each other: set one name" -}}
{{- end -}}
{{- $ns := include "controlplane.gitNamespace" . -}}
{{- if and .Values.gitSource.repo (eq .Values.rbac.scope "namespaced") (not (has $ns .Values.watchNamespaces)) -}}
{{- fail (printf "gitSource.namespace %q is not one of watchNamespaces %v: in the namespaced scope the git source applies canaries there only" $ns .Values.watchNamespaces) -}}
{{- end -}}
{{- end -}}

{{/* The namespace of a monitoring object: its own setting, else the release namespace. */}}
{{- define "controlplane.ns" -}}
{{- default .root.Release.Namespace .namespace -}}
{{- end -}}

{{/*
The rules the controller needs in every namespace it manages. Each rule names the code that needs
it; tests/chart/test_chart_rbac.py derives the kinds and verbs from the code and fails on a gap or an
extra.
*/}}
{{- define "controlplane.rules" -}}
# controller/runner.py watches, controller/reconcile.py gets and replaces (finalizer),
# operations.py lists and patches (intents recorded by the API)
- apiGroups: ["canary.controlplane.dev"]
  resources: ["modelcanaries"]
  verbs: ["get", "list", "watch", "update", "patch"]
# controller/reconcile.py: the rollout state lives in .status (replace_status)
- apiGroups: ["canary.controlplane.dev"]
  resources: ["modelcanaries/status"]
  verbs: ["update"]
# ownerReferences with blockOwnerDeletion on the serving objects
- apiGroups: ["canary.controlplane.dev"]
  resources: ["modelcanaries/finalizers"]
  verbs: ["update"]
# routing/ and controller/reconcile.py: server-side apply (create + patch), read back, delete
- apiGroups: ["serving.kserve.io"]
  resources: ["inferenceservices", "llminferenceservices"]
  verbs: ["get", "create", "patch", "delete"]
# controller/starved.py: the other HTTPRoutes of the canary's and its Gateway's namespaces
# (list), read when a candidate its route sends traffic to gets no request
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "create", "patch", "delete"]
# routing/istio.py: the model's own Service when spec.traffic.hosts is not given (apply, delete;
# routing/ownership.py reads it first: a Service the canary did not create is left alone)
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "create", "patch", "delete"]
# serving/adopt.py: the PodMonitor that scrapes an adopted stable's pods with the canary's labels
# (apply, delete; a cluster without the Prometheus Operator serves no such kind: skipped)
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors"]
  verbs: ["get", "create", "patch", "delete"]
# routing/kserve.py: the stable predictor's Deployment (a promotion without a rename waits for its
# rollout); routing/adopting.py: the adopted service's (a promotion waits for its rollout);
# controller/capacity.py: each variant's predictor Deployment (its ready replicas, the plan's);
# controller/children.py: the candidate's (its pods' selector); serving/pairer.py: the quality
# judge's pairer beside a canary with spec.quality (apply, release; its rollout read)
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "create", "patch", "delete"]
# controller/pairs.py: the pairer's scored pairs, read through the API server's Service proxy
# (GET /pairs on its Service): the controller reaches no pod itself (networkPolicy)
- apiGroups: [""]
  resources: ["services/proxy"]
  verbs: ["get"]
# controller/children.py: the candidate's pods (list, by its Deployment's selector), read only
# while it is not ready, to roll back at once one that cannot start (a crash loop, no image)
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# serving/render.py: chat-template ConfigMaps of prompt variants (apply, delete);
# notify/ledger.py: the alert dedup ledger ConfigMap (get, create, replace)
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "update", "patch", "delete"]
# kube event(): one Event per rollout history entry (create); an unnamed one told again
# (GitSyncFailed, AlertDeliveryFailed) is counted on the stored Event (get, patch)
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "get", "patch"]
{{- if .Values.gitSource.repo }}
# gitops/source.py (gitSource.repo): server-side apply of the files' ModelCanaries (create +
# patch){{ if .Values.gitSource.prune }}; gitSource.prune deletes those whose document left git{{ end }}
- apiGroups: ["canary.controlplane.dev"]
  resources: ["modelcanaries"]
  verbs: ["create", "patch"{{ if .Values.gitSource.prune }}, "delete"{{ end }}]
{{- end }}
{{- end -}}

{{/*
Reading Secrets by name (get, never list or watch): notify/secrets.py, the alert channels'
webhookSecretRef / hmacSecretRef; gitops/credentials.py, gitWriteBack.credentialsSecretRef. Each
names a Secret in the canary's namespace. With rbac.secretNames, those names only (resourceNames).
Where it is granted: see "controlplane.secretScope".
*/}}
{{- define "controlplane.secretRules" -}}
# notify/secrets.py: alert channels' webhookSecretRef / hmacSecretRef;
# gitops/credentials.py: gitWriteBack.credentialsSecretRef (get by name)
- apiGroups: [""]
  resources: ["secrets"]
  {{- with .Values.rbac.secretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
  verbs: ["get"]
{{- end -}}

{{/*
Where Secrets are readable (rbac.readSecrets on): "names" (the cluster scope with
rbac.secretNames: those names in every namespace), "namespaces" (the namespaced scope, or the
cluster scope with watchNamespaces and no names: a Role in each watched namespace), or "none"
(the cluster scope with neither: the controller reads no Secret at all, never every Secret).
*/}}
{{- define "controlplane.secretScope" -}}
{{- if not .Values.rbac.readSecrets -}}
none
{{- else if eq .Values.rbac.scope "namespaced" -}}
namespaces
{{- else if .Values.rbac.secretNames -}}
names
{{- else if .Values.watchNamespaces -}}
namespaces
{{- else -}}
none
{{- end -}}
{{- end -}}

{{/* gitops/locate.py: git write-back reads the Argo CD Application that tracks a canary. */}}
{{- define "controlplane.argocdRules" -}}
- apiGroups: ["argoproj.io"]
  resources: ["applications"]
  verbs: ["get"]
{{- end -}}
