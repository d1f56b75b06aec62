package projections

import (
	"context"
	"errors"
)

// Pausable runs a projection that can be paused and resumed while it runs:
// a replay pauses the read-model projection across the swap of the read
// model, so that it resumes from the new model's checkpoint rather than
// from where it was in the old one. Nothing it starts outlives Run.
type Pausable struct {
	run    func(ctx context.Context) error
	pauses chan pauseRequest
	exited chan struct{}
}

type pauseRequest struct {
	paused chan struct{} // closed once the projection has stopped
	resume chan struct{} // closed by the caller to start it again
}

// ErrNotRunning is returned by Pause when Run has returned.
var ErrNotRunning = errors.New("projection not running")

// NewPausable wraps run (a projection's Run).
func NewPausable(run func(ctx context.Context) error) *Pausable {
	return &Pausable{run: run, pauses: make(chan pauseRequest), exited: make(chan struct{})}
}

// Run runs the projection until ctx is done or it fails, stopping and
// starting it again around each pause.
func (p *Pausable) Run(ctx context.Context) error {
	defer close(p.exited)
	for {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.run(runCtx) }()
		select {
		case err := <-done:
			cancel()
			return err
		case req := <-p.pauses:
			cancel()
			err := <-done
			close(req.paused)
			if err != nil && ctx.Err() == nil {
				return err
			}
			select {
			case <-req.resume:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// Pause stops the projection and returns once it has stopped; resume
// starts it again. Pauses do not nest: a second Pause waits for the first
// one's resume.
func (p *Pausable) Pause(ctx context.Context) (resume func(), err error) {
	req := pauseRequest{paused: make(chan struct{}), resume: make(chan struct{})}
	select {
	case p.pauses <- req:
	case <-p.exited:
		return nil, ErrNotRunning
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	<-req.paused // Run always closes it once it took the request
	return func() { close(req.resume) }, nil
}
