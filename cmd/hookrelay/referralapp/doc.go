// Package referralapp is a small referral program used by `hookrelay demo`
// and as the worked example of the transactional outbox.
//
// People sign up with an email address and, optionally, the email of the
// participant who referred them. Each signup is one database transaction
// that inserts the participant, enqueues a signup.created event, bumps the
// referrer's referral count and, when the referrer reaches the goal, records
// a reward and enqueues participant.reached_goal. Because the events are
// written with [outbox.Enqueue] inside the same transaction as the business
// rows, hookrelay delivers an event exactly when the signup committed: a
// rolled-back signup leaves neither a participant nor an event behind.
//
// [App] does this with pgx; [SQLApp] shows the same signup with
// database/sql. [App.Handler] serves POST /signup for the demo:
//
//	curl -X POST http://127.0.0.1:PORT/signup \
//	    -d '{"email":"dana@example.com","referred_by":"ada@example.com"}'
//
// The business tables live in their own schema ("referralapp" by default);
// hookrelay's tables live in theirs ("hookrelay").
package referralapp
