package handlers

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// Rule allows the peers whose name matches Peer to call the targets that
// match one of Targets. Both are globs (path.Match: '*', '?', '[a-z]').
// A target is a handler name ("get_time"), "forward:" and a route name
// ("forward:files"), or a channel: "subscribe:NAME", "publish:NAME", or
// "channel:NAME" for both. In a channel target '*' and '?' match '/' too
// (channel names are flat: "channel:tenantA-*" covers "tenantA-eu/orders").
type Rule struct {
	Peer    string
	Targets []string
}

// ParseRule parses "PEER=TARGET,TARGET...", as --allow takes it:
// "c1=get_time,get_cat", "ops-*=*", "web=forward:files".
func ParseRule(s string) (Rule, error) {
	peer, list, ok := strings.Cut(s, "=")
	peer = strings.TrimSpace(peer)
	if !ok || peer == "" {
		return Rule{}, fmt.Errorf("rule %q: want PEER=TARGET[,TARGET...], like c1=get_time,get_cat", s)
	}
	r := Rule{Peer: peer}
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t != "" {
			r.Targets = append(r.Targets, t)
		}
	}
	if len(r.Targets) == 0 {
		return Rule{}, fmt.Errorf("rule %q: no target after '='", s)
	}
	for _, g := range append([]string{r.Peer}, r.Targets...) {
		if _, err := path.Match(g, ""); err != nil {
			return Rule{}, fmt.Errorf("rule %q: bad pattern %q: %v", s, g, err)
		}
	}
	return r, nil
}

// String is the rule as ParseRule reads it.
func (r Rule) String() string { return r.Peer + "=" + strings.Join(r.Targets, ",") }

// Rules is the built-in access rule engine: an event runs only if some
// rule allows its peer to call its target. With no rules at all, every
// event runs; once there is one, everything not allowed is denied.
type Rules struct {
	rules []Rule
}

// ParseRules parses rules in ParseRule's form.
func ParseRules(specs []string) (*Rules, error) {
	rs := &Rules{}
	for _, s := range specs {
		r, err := ParseRule(s)
		if err != nil {
			return nil, err
		}
		rs.rules = append(rs.rules, r)
	}
	return rs, nil
}

// Len is the number of rules.
func (rs *Rules) Len() int { return len(rs.rules) }

// Allows reports whether peer may call target (see Rule for channel
// targets).
func (rs *Rules) Allows(peer, target string) bool {
	if len(rs.rules) == 0 {
		return true
	}
	for _, r := range rs.rules {
		if ok, _ := path.Match(r.Peer, peer); !ok {
			continue
		}
		for _, t := range r.Targets {
			if matchTarget(t, target) {
				return true
			}
		}
	}
	return false
}

// matchTarget reports whether the rule target pattern matches target.
func matchTarget(pattern, target string) bool {
	if isChannelTarget(target) {
		return matchChannelTarget(pattern, target)
	}
	ok, _ := path.Match(pattern, target)
	return ok
}

// Auth is the rule engine as an Auth hook.
func (rs *Rules) Auth(_ context.Context, req *Request) (Decision, error) {
	if rs.Allows(req.Peer, req.Target()) {
		return Allow(), nil
	}
	return Deny("no access rule allows it"), nil
}
