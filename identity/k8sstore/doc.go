// Package k8sstore implements identity.Store over cluster-scoped
// SluiceIdentity objects on the Kubernetes API server, so every node gives a
// label set the same number: the object's name is the number (creating it
// is the atomic claim: AlreadyExists maps to identity.ErrExists) and its
// spec holds the labels. List is served from an informer cache. GC removes
// identities no Pod in the cluster uses (see GC for the rule).
//
// +groupName=sluice.io
// +versionName=v1alpha1
package k8sstore
