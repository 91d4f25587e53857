// Package loadgen sends the load: OpenAI-style completion requests fired
// with vegeta, one attack per stage, each request turned into a
// measure.Request by a timing transport.
//
// # Pieces
//
//   - Schedule (Constant, Ramp, Poisson) is a vegeta.Pacer that also says when
//     hit n is due (At). Pacers are pure functions of (elapsed, hits); they stop
//     once the next hit would be due at or after the stage duration. Due counts
//     the hits a schedule has due before an offset (a Poisson stage's own
//     realized count, not the intensity's integral). A closed loop
//     (Stage.Concurrency) is vegeta's infinite pacing with exactly N workers,
//     capped by Config.MaxInFlight (Window.Workers says what it ran with).
//   - PromptSource (Synthetic, LoadPrompts) gives prompts by index,
//     deterministically. Bodies renders a seeded pool of request bodies once
//     (up to 1024 synthetic ones, every prompt of a file); StageBody(stage, seq)
//     copies pool body seq mod Len and patches a fixed-width request id,
//     "[r01.000012ab] ", into the start of its prompt, so no two requests of a
//     run share a first token block and a server's prefix cache cannot serve
//     them from one another (the id costs about IDTokens prompt tokens).
//   - Generator runs stages (Run), stops them (Stop, Abort), waits for the
//     requests in flight (Wait) and counts (Live, with the peak in flight).
//
// # One request
//
// vegeta's targeter gives the method, URL and headers; it cannot know the
// sequence number its hit will get, so the timing transport (one per stage)
// reads X-Vegeta-Seq and sets the body Bodies.StageBody(stage, seq) (one
// copy of a pool body). It takes Sent just before the inner RoundTrip, reads
// the whole response itself (SSE lines scanned in place in a pooled buffer,
// no allocation per token), builds the measure.Request, hands it to the sink
// and gives vegeta an empty body. vegeta's results are drained and dropped:
// the record is the truth.
//
// # Clocks
//
// Every offset in a record (Scheduled, Sent) is time since Config.Epoch on the
// monotonic clock; durations after Sent (Headers, TTFT, ITL, E2E) are measured
// from Sent. Scheduled is the stage start + Schedule.At(seq), −1 under a
// closed loop.
//
// # Goroutines
//
// Run is called by one goroutine, one stage at a time; it returns when the
// stage stops sending (at its duration at the latest) and never waits for
// requests in flight. vegeta's pacing goroutine calls the stage's pacer; its
// workers call the targeter and the timing transport, which calls the sink.
// One drain goroutine per stage reads vegeta's results until vegeta closes
// them after the stage's last request ended; Wait waits for all of them. Stop
// and Abort may be called from any goroutine (a signal handler's).
//
// # Errors
//
// Failures are classified into measure's classes: transport errors
// (ConnectRefused, ConnectReset, DNS, ClientLimit, Other), the request
// timeout (Timeout, enforced through the request's context so it can be told
// apart), Abort (Canceled), non-2xx answers (HTTPClass with the server's
// message) and broken bodies (StreamError, StreamMalformed, StreamCut).
// Messages are one short line and never hold a header or the URL.
package loadgen
