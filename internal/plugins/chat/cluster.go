package chat

import (
	"encoding/json"

	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
)

// cluster is what a hub needs beyond its own process: presence of IDs
// logged in elsewhere and delivery to them. alone (the default) has no
// other instance; redisCluster (--redis) joins the instances sharing a
// Redis server. The hub consults it only for what it cannot settle
// locally, so a hub alone behaves exactly as it did without one.
type cluster interface {
	// claim records that id logs in here, before the login is answered,
	// and has an older session elsewhere closed (409). It returns the
	// token naming this session, for release and for eviction notices.
	claim(id string) (token string)
	// release records that the session token no longer holds id.
	release(id, token string)
	// deliver hands m to recipients not logged in here and returns those
	// that are reached nowhere. from and token name the sender, so a
	// recipient found gone on arrival can still be reported back to it.
	deliver(to []wire.ID, m *message, from, token string) (missed []wire.ID)
	// broadcast hands m to the users of every other instance.
	broadcast(m *message)
}

// alone is the cluster of one instance: nobody is logged in elsewhere.
type alone struct{}

func (alone) claim(string) string                                     { return "" }
func (alone) release(string, string)                                  {}
func (alone) broadcast(*message)                                      {}
func (alone) deliver(to []wire.ID, _ *message, _, _ string) []wire.ID { return to }

// evict closes the session holding key if token is its claim: the ID
// logged in on another instance since.
func (h *Hub) evict(key, token string) {
	h.mu.Lock()
	p := h.users[key]
	if p == nil || p.claim != token {
		h.mu.Unlock()
		return
	}
	delete(h.users, key)
	version := p.loginVersion
	h.mu.Unlock()
	p.stopped.Store(true)
	p.logger().Info("ID logged in on another instance; closing this one", "id", key)
	p.send(wire.AppendFrame(nil, version, wire.CmdError, replacedBody))
	p.stop()
}

// undelivered tells the session holding key, if token is its claim, that
// the recipients in raws were gone when its message reached their
// instance: the same 410 a local miss gets, only later.
func (h *Hub) undelivered(key, token string, raws []json.RawMessage) {
	h.mu.RLock()
	p := h.users[key]
	ok := p != nil && p.claim == token
	var version uint32
	if ok {
		version = p.loginVersion
	}
	h.mu.RUnlock()
	if !ok {
		return
	}
	body, _ := json.Marshal(wire.ErrorBody{Code: wire.CodeUndelivered, Error: "not delivered: recipient offline", Undelivered: raws})
	p.send(wire.AppendFrame(nil, version, wire.CmdError, body))
}

// claims returns every logged-in ID here with its session's token, for
// the cluster to renew their presence.
func (h *Hub) claims() map[string]string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	m := make(map[string]string, len(h.users))
	for k, p := range h.users {
		m[k] = p.claim
	}
	return m
}
