package daemon

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// eventComponent is the source component of the agent's Events.
const eventComponent = "sluice-agent"

// k8sEvents records Kubernetes Events about the objects the agent serves
// (Kubernetes mode), so `kubectl describe` shows what went wrong on which
// node.
type k8sEvents struct {
	cs   kubernetes.Interface
	b    record.EventBroadcaster
	rec  record.EventRecorder
	node string
	log  logrus.FieldLogger
}

func newK8sEvents(cs kubernetes.Interface, node string, log logrus.FieldLogger) *k8sEvents {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	return &k8sEvents{
		cs: cs, b: b, node: node, log: log,
		rec: b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: eventComponent, Host: node}),
	}
}

// healthCheckFailed records that the Service's health-check node port
// could not be opened on this node: a Warning with kube-proxy's reason
// (FailedToStartServiceHealthcheck), so alerts written for kube-proxy keep
// working. The Service is looked up for its UID (kubectl describe matches
// on it) off the caller's goroutine.
func (e *k8sEvents) healthCheckFailed(n types.NamespacedName, port uint16, err error) {
	go func() {
		ref := &corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: n.Namespace, Name: n.Name}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if svc, gerr := e.cs.CoreV1().Services(n.Namespace).Get(ctx, n.Name, metav1.GetOptions{}); gerr == nil {
			ref.UID, ref.ResourceVersion = svc.UID, svc.ResourceVersion
		} else {
			e.log.WithError(gerr).WithField("service", n.String()).Debug("Service of an Event not found; recorded without its UID")
		}
		e.rec.Eventf(ref, corev1.EventTypeWarning, "FailedToStartServiceHealthcheck",
			"node %s failed to start healthcheck %q on port %d: %v", e.node, n.String(), port, err)
	}()
}

// close flushes and stops the recorder.
func (e *k8sEvents) close() { e.b.Shutdown() }
