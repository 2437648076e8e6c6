package endpointmgr

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/deletequeue"
)

// LinkChecker reports whether the host interface name with index exists. An
// error means it could not tell; the endpoint is then kept.
type LinkChecker func(name string, index int) (bool, error)

// Restore loads the endpoints from their state files. Endpoints whose host
// interface is gone (no interface with that index and name) are dropped with
// their state file and counters; unreadable state files are renamed to
// .<name>.bad and skipped. Restore does not touch the endpoint map: call
// Reconcile afterwards.
func (m *Manager) Restore(linkExists LinkChecker) error {
	eps, bad, err := m.store.LoadAll()
	if err != nil {
		return err
	}
	for _, b := range bad {
		aside := filepath.Join(filepath.Dir(b.Path), "."+filepath.Base(b.Path)+".bad")
		m.log.WithError(b.Err).WithField("file", b.Path).Warn("Ignoring unusable endpoint state file")
		if err := os.Rename(b.Path, aside); err != nil {
			m.log.WithError(err).WithField("file", b.Path).Warn("Cannot move unusable state file aside")
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ep := range eps {
		log := m.log.WithFields(logrus.Fields{"endpoint": ep.Key(), "endpointID": ep.ID,
			"hostIfName": ep.HostIfName, "hostIfIndex": ep.HostIfIndex})
		e, err := parse(ep)
		if err == nil && m.byKey[ep.Key()] != nil {
			err = fmt.Errorf("duplicate of endpoint id %d", m.byKey[ep.Key()].ep.ID)
		}
		if err == nil && m.byIP[e.ip] != nil {
			err = fmt.Errorf("ipv4 %s duplicates endpoint id %d", e.ip, m.byIP[e.ip].ep.ID)
		}
		if err != nil {
			log.WithError(err).Warn("Dropping invalid restored endpoint")
			m.dropState(ep.ID, log)
			continue
		}
		ok, err := linkExists(ep.HostIfName, ep.HostIfIndex)
		if err != nil {
			log.WithError(err).Warn("Cannot check host interface of restored endpoint; keeping it")
		} else if !ok {
			log.Info("Dropping restored endpoint: host interface is gone")
			if err := m.ctrs.DeleteCounters(uint32(ep.HostIfIndex)); err != nil {
				log.WithError(err).Warn("Cannot delete endpoint counters")
			}
			m.dropState(ep.ID, log)
			continue
		}
		m.add(e)
	}
	m.log.WithField("endpoints", len(m.byKey)).Info("Endpoints restored")
	return nil
}

func (m *Manager) dropState(id uint16, log logrus.FieldLogger) {
	if err := m.store.Remove(id); err != nil {
		log.WithError(err).Warn("Cannot remove endpoint state file")
	}
}

// ProcessDeleteQueue deletes the endpoints named in dir's queue files and
// removes the files. Unparsable files are removed with a warning; a file
// whose deletion failed stays for the next run. Unknown endpoints are fine
// (DEL is idempotent). Temporary files older than deletequeue.StaleAfter,
// writes a crash interrupted, are removed unread.
func (m *Manager) ProcessDeleteQueue(dir string) error {
	stale, serr := deletequeue.RemoveStale(dir, time.Now().Add(-deletequeue.StaleAfter))
	for _, p := range stale {
		m.log.WithField("file", p).Warn("Removed an interrupted delete-queue write")
	}
	items, err := deletequeue.List(dir)
	if err != nil {
		return errors.Join(serr, err)
	}
	errs := []error{serr}
	for _, it := range items {
		log := m.log.WithField("file", it.Path)
		if it.Err != nil {
			log.WithError(it.Err).Warn("Removing unusable delete-queue file")
		} else {
			err := m.Delete(it.Entry.ContainerID, it.Entry.IfName)
			switch {
			case errors.Is(err, ErrNotFound):
				log.WithField("endpoint", it.Entry.ContainerID+"/"+it.Entry.IfName).Debug("Queued delete of unknown endpoint")
			case err != nil:
				errs = append(errs, fmt.Errorf("queued delete of %s/%s: %w", it.Entry.ContainerID, it.Entry.IfName, err))
				continue
			}
		}
		if err := os.Remove(it.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove delete-queue file: %w", err))
		}
	}
	return errors.Join(errs...)
}
