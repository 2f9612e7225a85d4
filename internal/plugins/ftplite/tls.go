package ftplite

import "strings"

// AUTH TLS turns the control connection into TLS (RFC 4217): the reply
// goes out in clear, then DataReceived hands the bytes after the command
// to the transport's StartTLS and gets plaintext from then on.

func cmdAuth(s *session, arg string) {
	switch strings.ToUpper(arg) {
	case "TLS", "SSL", "TLS-C":
	default:
		s.reply(504, "AUTH mechanism not supported; use AUTH TLS.")
		return
	}
	switch {
	case s.srv.tls == nil:
		s.reply(502, "TLS is not configured on this server.")
		return
	case s.secure:
		s.reply(503, "Already using TLS.")
		return
	}
	s.reply(234, "Proceed with negotiation.")
	// RFC 4217: a new security state means logging in again.
	s.secure, s.user, s.anon, s.pendingUser = true, "", false, ""
	s.switched = true
}

func cmdPbsz(s *session, arg string) {
	if !s.secure {
		s.reply(503, "PBSZ needs AUTH TLS first.")
		return
	}
	s.pbsz = true
	s.reply(200, "PBSZ=0")
}

func cmdProt(s *session, arg string) {
	switch {
	case !s.pbsz:
		s.reply(503, "PROT needs PBSZ first.")
	case strings.EqualFold(arg, "P"):
		s.protP = true
		s.reply(200, "PROT now Private.")
	case strings.EqualFold(arg, "C") && s.srv.cfg.TLSRequired:
		s.reply(534, "Data connections must be protected.")
	case strings.EqualFold(arg, "C"):
		s.protP = false
		s.reply(200, "PROT now Clear.")
	case strings.EqualFold(arg, "S"), strings.EqualFold(arg, "E"):
		s.reply(536, "PROT level not supported.")
	default:
		s.reply(504, "PROT takes C or P.")
	}
}
