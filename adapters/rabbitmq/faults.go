package rabbitmq

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The rest of MassTransit's fault and host headers (MessageHeaders.cs),
// written on parked copies as MassTransit's RabbitMQ error and dead-letter
// transports write them.
const (
	HeaderFaultStackTrace   = "MT-Fault-StackTrace"
	HeaderFaultConsumerType = "MT-Fault-ConsumerType"
	HeaderFaultMessageType  = "MT-Fault-MessageType"
	HeaderFaultRetryCount   = "MT-Fault-RetryCount"

	HeaderHostProcessName        = "MT-Host-ProcessName"
	HeaderHostProcessID          = "MT-Host-ProcessId"
	HeaderHostAssembly           = "MT-Host-Assembly"
	HeaderHostAssemblyVersion    = "MT-Host-AssemblyVersion"
	HeaderHostFrameworkVersion   = "MT-Host-FrameworkVersion"
	HeaderHostMassTransitVersion = "MT-Host-MassTransitVersion"
	HeaderHostOSVersion          = "MT-Host-OperatingSystemVersion"

	// HeaderLedgerDetail is the error text on every parked copy: a
	// `_skipped` copy carries no MT-Fault-Message (MassTransit writes none
	// there), yet the dead-letter tooling shows why it was skipped.
	HeaderLedgerDetail = "x-ledger-detail"
	// HeaderLedgerParkedAt is when the ledger parked it (RFC 3339), on
	// `_skipped` copies too, which carry no MT-Fault-Timestamp.
	HeaderLedgerParkedAt = "x-ledger-parked-at"
)

// MT-Reason values of MassTransit's transports: the error transport writes
// "fault", DeadLetterTransportFilter "dead-letter".
const (
	ReasonFault      = "fault"
	ReasonDeadLetter = "dead-letter"
)

// FaultConsumerType names the ledger's consumer of the ledger queue in
// MT-Fault-ConsumerType, like the exception types' OrderLedger. names.
const FaultConsumerType = "OrderLedger.LedgerConsumer"

// faultTimeLayout is .NET's round-trip ("O") format for a UTC time, as
// MassTransit writes MT-Fault-Timestamp: seven fractional digits and Z.
const faultTimeLayout = "2006-01-02T15:04:05.0000000Z07:00"

// host is what the ledger says of its process, MassTransit's
// HostMetadataCache with the ledger's equivalents: the Go main package for
// the assembly, the Go runtime for the framework, the AMQP client for
// MassTransit. The envelope's host block and the MT-Host-* headers both
// come from it.
var host = func() mtHost {
	machine, _ := os.Hostname()
	assembly, version, client := "ledger", "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Path != "" {
			assembly = bi.Path
		}
		version = bi.Main.Version
		if version == "" || version == "(devel)" {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					version = s.Value
				}
			}
		}
		if version == "" {
			version = "unknown"
		}
		for _, dep := range bi.Deps {
			if dep.Path == "github.com/rabbitmq/amqp091-go" {
				client = "amqp091-go " + dep.Version
			}
		}
	}
	return mtHost{
		MachineName: machine, ProcessName: filepath.Base(os.Args[0]), ProcessID: os.Getpid(),
		Assembly: assembly, AssemblyVersion: version, FrameworkVersion: runtime.Version(),
		MassTransitVersion: client, OperatingSystemVersion: osVersion(),
	}
}()

// hostHeaders are the MT-Host-* headers of host.
var hostHeaders = map[string]any{
	HeaderHostMachine:            host.MachineName,
	HeaderHostProcessName:        host.ProcessName,
	HeaderHostProcessID:          strconv.Itoa(host.ProcessID), // a string, as MassTransit's ToString("F0")
	HeaderHostAssembly:           host.Assembly,
	HeaderHostAssemblyVersion:    host.AssemblyVersion,
	HeaderHostFrameworkVersion:   host.FrameworkVersion,
	HeaderHostMassTransitVersion: host.MassTransitVersion,
	HeaderHostOSVersion:          host.OperatingSystemVersion,
}

// osVersion is the kernel and platform, as .NET's Environment.OSVersion
// ("Unix 6.1.0"); the release is read where the kernel publishes it.
func osVersion() string {
	v := runtime.GOOS
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		v += " " + strings.TrimSpace(string(b))
	}
	return v + " " + runtime.GOARCH
}

// inputAddress is the queue's MassTransit address, rabbitmq://host/vhost/queue
// (rabbitmqs:// over TLS), as RabbitMqEndpointAddress writes it: no
// credentials, the default port left out, the default vhost "/" left out
// of the path. Redrive tools take the queue from the last segment.
func inputAddress(brokerURL, queue string) string {
	u, err := amqp.ParseURI(brokerURL)
	if err != nil {
		return queue // unreachable: New validated the URL
	}
	scheme, defPort := "rabbitmq", 5672
	if u.Scheme == "amqps" {
		scheme, defPort = "rabbitmqs", 5671
	}
	host := strings.ToLower(u.Host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	if u.Port != 0 && u.Port != defPort {
		host += ":" + strconv.Itoa(u.Port)
	}
	path := "/" + queue
	if u.Vhost != "/" && u.Vhost != "" {
		path = "/" + escapeData(u.Vhost) + "/" + queue
	}
	return scheme + "://" + host + path
}

// escapeData escapes all but RFC 3986's unreserved characters, as .NET's
// Uri.EscapeDataString, which MassTransit uses for the vhost.
func escapeData(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			sb.WriteByte(c)
			continue
		}
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

// stackTrace is the Go error chain in MT-Fault-StackTrace's place: one
// line per wrapped error, outermost first, each with its type and the
// text it adds to the error it wraps (.NET's "   at ..." frames).
func stackTrace(err error) string {
	if err == nil {
		return ""
	}
	var lines []string
	var walk func(e error, depth int)
	walk = func(e error, depth int) {
		if e == nil || depth > 32 || len(lines) >= 64 {
			return
		}
		msg := e.Error()
		var inner []error
		switch x := e.(type) {
		case interface{ Unwrap() error }:
			if in := x.Unwrap(); in != nil {
				inner = []error{in}
				msg = strings.TrimSuffix(strings.TrimSuffix(msg, in.Error()), ": ")
			}
		case interface{ Unwrap() []error }:
			inner = x.Unwrap()
			if len(inner) > 0 {
				msg = "" // errors.Join: its text is its errors', each on its own line
			}
		}
		line := fmt.Sprintf("   at %T", e)
		if msg != "" {
			line += ": " + msg
		}
		lines = append(lines, line)
		for _, in := range inner {
			walk(in, depth+1)
		}
	}
	walk(err, 0)
	return strings.Join(lines, "\n")
}

// exceptionType is MT-Fault-ExceptionType: the kind of failure, named
// like a .NET type so MassTransit tools group by it.
func exceptionType(v Verdict) string {
	switch {
	case errors.Is(v.Err, ErrUnknownType):
		return "OrderLedger.UnknownMessageType"
	case errors.Is(v.Err, ErrMalformed):
		return "OrderLedger.MalformedMessage"
	case v.Reason == ReasonDeliveryLimit:
		return "OrderLedger.DeliveryLimitExceeded"
	}
	return "OrderLedger.HandlerFault"
}

// faultMessageType is MT-Fault-MessageType: the message's type as decoded,
// else as the delivery names it (type property, MassTransit header).
func faultMessageType(it *item) string {
	m := it.msg
	switch {
	case m.Type != "" && m.Namespace != "":
		return m.Namespace + "." + m.Type
	case m.Type != "":
		return m.Type
	case it.d.Type != "":
		return it.d.Type
	}
	if s, _ := it.d.Headers["MT-MessageType"].(string); s != "" {
		return strings.TrimPrefix(strings.Split(s, ";")[0], "urn:message:")
	}
	return "unknown"
}

// faultHeaders sets on h (a copy of the delivery's headers) what
// MassTransit's RabbitMQ move transport writes: the host headers always
// (RabbitMqMoveTransport.Move), then for `_error` the fault headers with
// MT-Reason "fault" (RabbitMqErrorTransport, SetExceptionHeaders), for
// `_skipped` MT-Reason "dead-letter" and no fault headers
// (RabbitMqDeadLetterTransport). deliveries is the delivery count.
func faultHeaders(h map[string]any, it *item, input string, deliveries int, at time.Time) {
	for k := range h {
		// Headers of an earlier fault (a copy re-driven and parked again)
		// must not pass for this one's.
		if strings.HasPrefix(k, "MT-Fault-") || strings.HasPrefix(k, "MT-Host-") {
			delete(h, k)
		}
	}
	for k, v := range hostHeaders {
		h[k] = v
	}
	v := it.verdict
	detail := v.Reason
	if v.Err != nil {
		detail = v.Err.Error()
	}
	h[HeaderLedgerDetail] = detail
	if v.Action == Skip {
		h[HeaderReason] = ReasonDeadLetter
		return
	}
	h[HeaderReason] = ReasonFault
	h[HeaderFaultException] = exceptionType(v)
	h[HeaderFaultMessage] = detail
	h[HeaderFaultTimestamp] = at.UTC().Format(faultTimeLayout)
	h[HeaderFaultInput] = input
	trace := stackTrace(v.Err)
	if trace == "" {
		trace = "   at " + exceptionType(v) + ": " + detail
	}
	h[HeaderFaultStackTrace] = trace
	h[HeaderFaultConsumerType] = FaultConsumerType
	h[HeaderFaultMessageType] = faultMessageType(it)
	// Retries before this fault; MassTransit leaves it out at 0, the
	// ledger writes it always so the set is the same on every copy.
	h[HeaderFaultRetryCount] = int32(max(deliveries-1, 0))
}
