package main

import (
	"io"
	"regexp"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Log lines pass through a scrubber before they are written: whatever a
// field holds, an e-mail address or a password inside a URL never reaches
// the output. Scrubbing the encoded line, rather than chosen fields, also
// covers error strings that quote a message or a dial URL.
var (
	emailRE   = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	urlPassRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s"]*):[^@/\s"]*@`)
)

func scrub(b []byte) []byte {
	b = urlPassRE.ReplaceAll(b, []byte("${1}:xxxxx@"))
	return emailRE.ReplaceAll(b, []byte("<email>"))
}

type scrubWriter struct{ w zapcore.WriteSyncer }

func (s scrubWriter) Write(p []byte) (int, error) {
	if _, err := s.w.Write(scrub(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s scrubWriter) Sync() error { return s.w.Sync() }

// newLogger builds the service logger: console for people, JSON for
// machines, every line scrubbed.
func newLogger(format, level string, out io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	var enc zapcore.Encoder
	if format == "json" {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	} else {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	}
	core := zapcore.NewCore(enc, scrubWriter{zapcore.AddSync(out)}, lvl)
	return zap.New(core, zap.AddCaller()), nil
}
