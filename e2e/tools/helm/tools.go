//go:build tools

// Package tools pins helm.sh/helm/v4's CLI in go.mod.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
