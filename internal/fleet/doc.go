// Package fleet connects fsnotifyd hosts through NATS JetStream: every host's file events and
// guard decisions go to one durable stream with an exact account of what was lost, and one
// guard policy in a key-value bucket is followed by every host, each saying which revision it
// enforces. docs/fleet.md is the user's and operator's description; this is the
// implementer's.
//
// # Records
//
// A record is one JSON object: the payload the caller gives (the object of `watch --json`,
// or a guard audit line) with host, boot_id, seq and kind put in front. seq is per host and
// strictly increasing across restarts; kind is event, decision or gap. Records go to
// fsnotifyd.events.<token>, fsnotifyd.decisions.<token> and fsnotifyd.gaps.<token>, token
// being HostToken(host), with header Nats-Msg-Id = <token>/<key>/<seq> so that the server
// drops a resent copy within the stream's duplicate window. key is the spool's secret (its seq
// file, chosen when the spool is new): the window is the stream's, so another host that could
// name this host's ids could have its records dropped as duplicates.
//
// # Exporter: Append → memory buffer → writer → spool → publisher → JetStream
//
// Append copies the payload into a bounded memory buffer under qmu and returns; when the
// buffer is full it counts the record as lost. The writer goroutine takes the whole buffer,
// gives each record its seq (losses get seqs too), writes the batch to the spool with one
// write(2), and gap records for what was lost. The publisher goroutine reads the spool in
// seq order and publishes asynchronously with up to Window acknowledgements outstanding;
// an error or timeout stops new sends until every outstanding one is resolved, then the
// failed ones are sent again (in order) once the connection and the stream are there. A
// record the stream refuses for good (refusedForGood: max_msg_size, max_payload) is not sent
// again: it goes to the writer like a damaged spool range, which writes its gap record
// (reason rejected) and reports back (qgapped); the publisher retires it once that is in the
// spool. The acknowledged prefix is handed to the spool, which deletes segments nothing needs.
//
// Loss accounting is exact: every seq is either a record in the spool (sent until
// acknowledged) or inside the range of a gap record, which is written before any record with
// a higher seq; a gap that cannot be written at Close is kept in the spool state and written
// at the next start. The only losses without a seq are the records in the memory buffer at a
// crash, and a kernel overflow; each gets a gap record without a range (reason crash, or
// overflow) in its place.
//
// Seqs: the writer reserves blocks of seqBlock seqs durably (the spool's seq file, fsynced)
// before using them. After a clean Close the next run goes on after the last seq used; after
// a crash without reboot (same boot id) it goes on after the last seq in the spool, because
// the page cache kept every write and nothing unspooled left the process; after a reboot it
// goes on above the reservation, so a seq that left the machine from an unsynced spool tail
// is never reused (the gap record names the skipped range).
//
// # Goroutines and locks
//
//	Exporter:   the writer (writeLoop) owns seqs, the spool's writing side and the pending
//	            gap; the publisher (publishLoop) owns the NATS connection, the window and the
//	            spool reader. nats.go's goroutines call onAck/onErr/connChanged, which only
//	            send on channels without waiting.
//	            Exporter.qmu guards the memory buffer and the publisher's hand-offs to the
//	            writer (qdamaged, qfinal) and back (qgapped) (leaf); Exporter.evMu the overflow
//	            of the outcome channel (leaf); spool.Spool.mu the segment list (leaf);
//	            dialSaid.mu (the Exporter's and the PolicyFollower's) the dial failures said
//	            since the last connection (leaf). No lock is held
//	            across a channel send, a callback, a log line or a system call other than the
//	            spool's unlink-free bookkeeping.
//	PolicyFollower: one goroutine (run) owns the connection and reads the key (a direct get,
//	            no consumer) when a core subscription to its subject hears it written and
//	            every pollEvery, and calls Apply and Log; the subscription's callback only
//	            sends on a channel without waiting;
//	            PolicyFollower.mu guards the status (leaf).
//
// # Tail
//
// Tail reads with an ordered consumer, or a durable one. It keeps the jumps in stream
// sequence between the records it reads and asks the stream's first sequence about them
// together, at most every missedCheck and when it stops: what of a jump lies below it was
// dropped by the stream (limits, purge) before it was read, and fn gets a Received with
// Missed. The front only moves up, so a first sequence asked after the jump that is at or
// below its start proves nothing was dropped there. A durable reader keeps its last stream
// sequence in the consumer's metadata (tailPositionKey), since the server moves the
// consumer's own position past a purge.
//
// Everything here stops with Close (Exporter.Close, PolicyFollower.Close); Tail returns when
// its context is done.
package fleet
