package limits

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// pipelineWorkers is how many pipelines a Redis store has in flight at
// once, and pipelineMax the most calls one carries.
const (
	pipelineWorkers = 4
	pipelineMax     = 256
)

// pipeliner sends the script calls of concurrent sessions to Redis
// together: a worker takes a call and every other one waiting at that
// moment and sends them in one pipeline (one write and one read for all).
// Under load a session's count costs a fraction of a round trip; alone it
// costs one, as before. A pipeline waits at most the store's timeouts, so
// a call waits at most a few of them even when Redis hangs.
type pipeliner struct {
	client *redis.Client
	calls  chan *scriptCall
	stop   chan struct{}
	done   sync.WaitGroup
}

type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	res    any
	err    error
	done   chan struct{}
}

func newPipeliner(client *redis.Client) *pipeliner {
	p := &pipeliner{client: client, calls: make(chan *scriptCall), stop: make(chan struct{})}
	for range pipelineWorkers {
		p.done.Add(1)
		go p.work()
	}
	return p
}

// run runs script with keys and args in the next pipeline and returns its
// answer.
func (p *pipeliner) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	c := &scriptCall{script: script, keys: keys, args: args, done: make(chan struct{})}
	cmd := redis.NewCmd(ctx)
	select {
	case p.calls <- c:
	case <-ctx.Done():
		cmd.SetErr(ctx.Err())
		return cmd
	case <-p.stop:
		cmd.SetErr(redis.ErrClosed)
		return cmd
	}
	select {
	case <-c.done:
		cmd.SetVal(c.res)
		cmd.SetErr(c.err)
	case <-ctx.Done():
		cmd.SetErr(ctx.Err())
	}
	return cmd
}

func (p *pipeliner) work() {
	defer p.done.Done()
	batch := make([]*scriptCall, 0, pipelineMax)
	for {
		select {
		case <-p.stop:
			return
		case c := <-p.calls:
			batch = append(batch[:0], c)
		}
	more:
		for len(batch) < pipelineMax {
			select {
			case c := <-p.calls:
				batch = append(batch, c)
			default:
				break more
			}
		}
		p.exec(batch)
	}
}

// exec sends batch; a script Redis does not know yet (NOSCRIPT: a new or
// restarted Redis) is loaded by running its call alone.
func (p *pipeliner) exec(batch []*scriptCall) {
	opts := p.client.Options()
	ctx, cancel := context.WithTimeout(context.Background(), opts.WriteTimeout+opts.ReadTimeout)
	defer cancel()
	if len(batch) == 1 {
		c := batch[0]
		c.res, c.err = c.script.Run(ctx, p.client, c.keys, c.args...).Result()
		close(c.done)
		return
	}
	pipe := p.client.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	pipe.Exec(ctx) // each command holds its own error
	for i, c := range batch {
		c.res, c.err = cmds[i].Result()
		if c.err != nil && redis.HasErrorPrefix(c.err, "NOSCRIPT") {
			c.res, c.err = c.script.Run(ctx, p.client, c.keys, c.args...).Result()
		}
		close(c.done)
	}
}

// close stops the workers once their pipelines are done.
func (p *pipeliner) close() {
	close(p.stop)
	p.done.Wait()
}
