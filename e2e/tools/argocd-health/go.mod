// Module of the Argo CD health-check runner: gopher-lua as Argo CD v3.6
// pins it (github.com/argoproj/argo-cd/v3 go.mod).
module sluice.dev/e2e/tools/argocd-health

go 1.24.0

require github.com/yuin/gopher-lua v1.1.2
