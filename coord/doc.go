// Package coord keeps a shoal member in its pool: it registers the member in
// ZooKeeper, watches the members and the jobs, and hands the engine full
// snapshots (the job set; the ring of members and when it takes effect).
// ZooKeeper holds membership and jobs only. One goroutine (Coordinator.Run)
// owns the connection; the client's callback only queues events for it.
//
// # Layout (root configurable, default /shoal)
//
//	ROOT/members/<member-id>  ephemeral; JSON: address, version, started_ms,
//	                          slot, since_ms, leaving_ms (see Member)
//	ROOT/slots/<NNNN>         persistent; JSON: member (last holder), created_ms
//	ROOT/jobs/<job_name>      persistent; one Prometheus scrape_config in YAML
//
// # Ring slots
//
// ring/ needs every member in a stable slot and a slot count that never
// shrinks. The claim lives in the member node (its slot field); the slot
// nodes are persistent and never deleted, so their number is the high-water
// mark every member reads alike, and each remembers its last holder, so a
// restarted member takes its own slot, and its own targets, back.
//
// A joining member reads the slot nodes (with their versions), then the
// member nodes, picks a free slot and commits, in one multi-op, its member
// node plus a version-checked write of the slot node (or the creation of a
// new one). Two members racing for one slot cannot both win: a claim
// committed after our slot read fails our version check; one committed
// before it is visible in our member read, which comes after.
//
// # Hand-over at an announced instant
//
// A join or a graceful leave takes effect at an instant announced in the
// member node, HandoverDelay (default 2s) ahead: since_ms for a join,
// leaving_ms for a leave. Every member computes the ring in force at any
// instant from the same nodes (State.RingAt), and passes the engine the
// ring and the instant it takes effect (engine.SetOwner(o, at)). The engine
// gives each due scrape to the owner in force at its due instant, so old
// and new owner switch between the same two consecutive scrapes of each
// target: nothing doubled, nothing skipped, as long as clocks agree and
// every member hears of the change before the instant (ZooKeeper notifies
// in milliseconds). The leaving member keeps scraping until its instant,
// then deletes its node.
//
// A member that vanishes without leaving (crash, lost session) announces
// nothing: its node goes when ZooKeeper expires its session, and its
// targets move at once. A new slot counts toward the slot count only from
// its creator's since instant, so the count grows in the same change that
// fills the slot.
//
// # Sessions
//
// A lost connection is retried by the client. Meanwhile the member asks
// its peers' /api/v1/cluster: if a peer has a session, ZooKeeper is up and
// this member is the one cut off, so ZooKeeper will expire its session and
// hand its targets over; it stops scraping before that (a gap, never a
// double) and resumes if the session survives. If no peer has a session,
// ZooKeeper is down for everyone, nobody can take over, and it scrapes on:
// a coordinator outage must not stop monitoring. On expiry it stops at once
// (DESIGN invariant 6), and once a new session is up it registers again (a
// new join, announced like any other) and re-reads everything with fresh
// watches.
package coord
