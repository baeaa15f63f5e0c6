//! The indymilter callbacks: a short table of registrations, each calling
//! one named handler that takes the [`Session`] out of the context, runs
//! the session's step inside the connection span, and puts it back. The
//! stages run where the evaluator (`tollgate_checks::Evaluator`, whose
//! crate documentation has the stage table) puts them: skip lists and the
//! FCrDNS lookup at CONNECT;
//! helo-syntax, the fcrdns verdict, helo-dns and spf-helo at HELO;
//! spf-mailfrom at MAIL; the reply at RCPT (or as early as possible);
//! headers at end of message.
//!
//! A callback that finds no session (the MTA skipped CONNECT, or the
//! protocol went wrong) answers tempfail: failing open would let
//! unchecked mail through.
//!
//! With metrics on, the slot holds the [`Metrics`], and each registration
//! wraps its handler in [`timed`]: every command is counted and timed.

use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use indymilter::{
    Actions, Callbacks, Context, ContextActions, EomContext, MacroStage, NegotiateContext,
    ProtoOpts, SetErrorReply, SocketInfo, Status,
};
use tracing::Instrument;

use super::State;
use super::fields::reply_text;
use super::session::{Answer, HeaderEdit, Session};
use crate::metrics::{Command, Metrics};

/// The macros tollgate asks the MTA for, per stage.
/// Postfix assigns the queue id (`i`) only once the queue file is open,
/// so it first arrives at DATA; Sendmail sends it at MAIL.
const MACROS: [(MacroStage, &str); 6] = [
    (
        MacroStage::Connect,
        "j {client_addr} {client_port} {client_name} {daemon_name}",
    ),
    (MacroStage::Mail, "i {auth_authen} {mail_addr}"),
    (MacroStage::Rcpt, "i"),
    (MacroStage::Data, "i"),
    (MacroStage::Eoh, "i"),
    (MacroStage::Eom, "i"),
];

/// The text of an MTA-supplied string, borrowed when it is UTF-8.
fn text(s: &CStr) -> Cow<'_, str> {
    String::from_utf8_lossy(s.to_bytes())
}

/// A macro's value, if the MTA sent it and it is not empty.
fn macro_text<'a>(macros: &'a indymilter::Macros, name: &CStr) -> Option<Cow<'a, str>> {
    macros.get(name).map(text).filter(|v| !v.is_empty())
}

/// Sets the reply and gives the status that goes with it.
fn refuse(reply_slot: &mut indymilter::SmtpReply, answer: Answer) -> Status {
    match answer {
        Answer::Continue => Status::Continue,
        Answer::Refuse(reply) => {
            let code = reply.code.to_string();
            if let Err(e) =
                reply_slot.set_error_reply(&code, Some(&reply.enhanced), [reply_text(&reply.text)])
            {
                tracing::warn!(error = %e, reply = %reply, "cannot set the reply; using the MTA's default");
            }
            if reply.code >= 500 {
                Status::Reject
            } else {
                Status::Tempfail
            }
        }
    }
}

/// What indymilter keeps per connection: the protocol steps that need no
/// reply (negotiated once) and the session (from CONNECT on), boxed so it
/// moves in and out of the context as a pointer.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    noreply: ProtoOpts,
    session: Option<Box<Session>>,
    metrics: Option<Arc<Metrics>>,
}

impl Slot {
    /// `Continue`, or `Noreply` where the MTA agreed to expect no reply.
    fn go_on(&self, step: ProtoOpts) -> Status {
        if self.noreply.contains(step) {
            Status::Noreply
        } else {
            Status::Continue
        }
    }
}

fn take(data: &mut Option<Slot>) -> Option<Box<Session>> {
    let session = data.as_mut().and_then(|slot| slot.session.take());
    if session.is_none() {
        no_session(data.as_ref());
    }
    session
}

fn no_session(slot: Option<&Slot>) {
    tracing::warn!("milter command without a session (no CONNECT seen); answering tempfail");
    if let Some(metrics) = slot.and_then(|s| s.metrics.as_deref()) {
        metrics.protocol_error();
    }
}

/// Times a command, with metrics on (the slot holds them from negotiate on).
struct Timer(Option<Instant>);

impl Timer {
    fn start(data: &Option<Slot>) -> Timer {
        Timer(
            data.as_ref()
                .is_some_and(|slot| slot.metrics.is_some())
                .then(Instant::now),
        )
    }

    fn stop(self, data: &Option<Slot>, command: Command) {
        if let (Some(started), Some(metrics)) =
            (self.0, data.as_ref().and_then(|s| s.metrics.as_deref()))
        {
            metrics.command(command, started.elapsed());
        }
    }
}

/// A handler's future, boxed for indymilter, timed as `command`.
macro_rules! timed {
    ($command:expr, $cx:ident, $handler:expr) => {
        Box::pin(async move {
            let timer = Timer::start(&$cx.data);
            let status = $handler.await;
            timer.stop(&$cx.data, $command);
            status
        })
    };
}

/// The queue id (`i`), from whichever macros the MTA sent with this command.
fn queue_id(macros: &indymilter::Macros) -> Option<Cow<'_, str>> {
    macro_text(macros, c"i")
}

fn put(data: &mut Option<Slot>, session: Box<Session>) {
    data.get_or_insert_with(Slot::default).session = Some(session);
}

/// The callbacks over the shared state.
pub(crate) fn callbacks(state: Arc<State>) -> Callbacks<Slot> {
    let metrics = state.metrics.clone();
    Callbacks::new()
        .on_negotiate(move |cx, actions, opts| {
            let metrics = metrics.clone();
            Box::pin(async move {
                let timer = Timer(metrics.is_some().then(Instant::now));
                let status = negotiate(cx, actions, opts, metrics).await;
                timer.stop(&cx.data, Command::Negotiate);
                status
            })
        })
        .on_connect(move |cx, _hostname, socket| {
            let state = Arc::clone(&state);
            timed!(Command::Connect, cx, connect(state, cx, socket))
        })
        .on_helo(|cx, helo| timed!(Command::Helo, cx, helo_cb(cx, helo)))
        .on_mail(|cx, args| timed!(Command::Mail, cx, mail(cx, args)))
        .on_rcpt(|cx, args| timed!(Command::Rcpt, cx, rcpt(cx, args)))
        .on_header(|cx, name, value| timed!(Command::Header, cx, header(cx, name, value)))
        .on_eom(|cx| timed!(Command::Eom, cx, eom(cx)))
        .on_abort(|cx| timed!(Command::Abort, cx, abort(cx)))
        .on_close(|cx| timed!(Command::Close, cx, close(cx)))
}

/// Option negotiation: the actions and protocol steps tollgate needs, and
/// the macros it asks for.
async fn negotiate(
    cx: &mut NegotiateContext<Slot>,
    actions: Actions,
    opts: ProtoOpts,
    metrics: Option<Arc<Metrics>>,
) -> Status {
    cx.requested_actions = actions & (Actions::ADD_HEADER | Actions::CHANGE_HEADER);
    let unwanted = ProtoOpts::NO_BODY | ProtoOpts::NO_UNKNOWN | ProtoOpts::NO_DATA;
    // CONNECT never refuses and headers are only read: where the MTA
    // allows it, it need not wait for a reply to them (Postfix then sends
    // all headers in one write).
    let noreply = opts & (ProtoOpts::NOREPLY_CONNECT | ProtoOpts::NOREPLY_HEADER);
    cx.requested_opts |= (opts & unwanted) | noreply;
    cx.data = Some(Slot {
        noreply,
        session: None,
        metrics,
    });
    for (stage, names) in MACROS {
        cx.requested_macros
            .insert(stage, CString::new(names).expect("no NUL in macro names"));
    }
    Status::Continue
}

/// CONNECT: a new session; its skip and FCrDNS lookup start.
async fn connect(state: Arc<State>, cx: &mut Context<Slot>, socket: SocketInfo) -> Status {
    // The client's address and port come with CONNECT itself; the macros
    // stand in when the MTA sends no inet address.
    let (ip, port) = match socket {
        SocketInfo::Inet(addr) => (Some(addr.ip()), Some(addr.port())),
        _ => (
            macro_text(&cx.macros, c"{client_addr}").and_then(|a| a.parse::<IpAddr>().ok()),
            macro_text(&cx.macros, c"{client_port}").and_then(|p| p.parse::<u16>().ok()),
        ),
    };
    let mta_host = macro_text(&cx.macros, c"j");
    let id = state.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let guard = state.session_opened();
    let session = Session::new(
        id,
        state.current(),
        guard,
        state.metrics.clone(),
        ip,
        port.filter(|&p| p != 0),
        mta_host.as_deref(),
    );
    session.span.in_scope(|| tracing::debug!("connect"));
    put(&mut cx.data, Box::new(session));
    cx.data.as_ref().map_or(Status::Continue, |slot| {
        slot.go_on(ProtoOpts::NOREPLY_CONNECT)
    })
}

/// HELO/EHLO.
async fn helo_cb(cx: &mut Context<Slot>, helo: CString) -> Status {
    let Some(mut session) = take(&mut cx.data) else {
        return Status::Tempfail;
    };
    let span = session.span.clone();
    let answer = session.helo(&text(&helo)).instrument(span).await;
    put(&mut cx.data, session);
    refuse(&mut cx.reply, answer)
}

/// MAIL FROM.
async fn mail(cx: &mut Context<Slot>, args: Vec<CString>) -> Status {
    let Some(mut session) = take(&mut cx.data) else {
        return Status::Tempfail;
    };
    let sender = args.first().map(|a| text(a)).unwrap_or_default();
    let auth = macro_text(&cx.macros, c"{auth_authen}");
    let span = session.span.clone();
    let answer = session
        .mail(&sender, auth.as_deref())
        .instrument(span)
        .await;
    session.queue_id(queue_id(&cx.macros));
    put(&mut cx.data, session);
    refuse(&mut cx.reply, answer)
}

/// RCPT TO.
async fn rcpt(cx: &mut Context<Slot>, args: Vec<CString>) -> Status {
    let Some(mut session) = take(&mut cx.data) else {
        return Status::Tempfail;
    };
    let rcpt = args
        .first()
        .map(|a| text(a).into_owned())
        .unwrap_or_default();
    session.queue_id(queue_id(&cx.macros));
    let span = session.span.clone();
    let answer = session.rcpt(rcpt).instrument(span).await;
    put(&mut cx.data, session);
    refuse(&mut cx.reply, answer)
}

/// A header: remembered when it is a forged `Authentication-Results`.
async fn header(cx: &mut Context<Slot>, name: CString, value: CString) -> Status {
    let Some(session) = cx.data.as_mut().and_then(|slot| slot.session.as_mut()) else {
        no_session(cx.data.as_ref());
        return Status::Tempfail;
    };
    // The queue id comes with DATA at the latest (and is read again at
    // the end of the message): only looked for here while unknown.
    if !session.has_queue_id() {
        session.queue_id(queue_id(&cx.macros));
    }
    session.header(&text(&name), &text(&value));
    cx.data.as_ref().map_or(Status::Continue, |slot| {
        slot.go_on(ProtoOpts::NOREPLY_HEADER)
    })
}

/// End of message: the session's header edits, applied.
async fn eom(cx: &mut EomContext<Slot>) -> Status {
    let Some(mut session) = take(&mut cx.data) else {
        return Status::Tempfail;
    };
    session.queue_id(queue_id(&cx.macros));
    let span = session.span.clone();
    async {
        for edit in session.end_of_message().await {
            let result = match &edit {
                HeaderEdit::RemoveAuthenticationResults(index) => {
                    cx.actions
                        .change_header("Authentication-Results", *index, None::<CString>)
                        .await
                }
                HeaderEdit::InsertOnTop(name, value) => {
                    cx.actions.insert_header(0, *name, value.as_str()).await
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, edit = ?edit, "cannot edit the message header");
            }
        }
    }
    .instrument(span)
    .await;
    put(&mut cx.data, session);
    Status::Continue
}

/// RSET or an aborted transaction: the message line, and a new message.
async fn abort(cx: &mut Context<Slot>) -> Status {
    if let Some(session) = cx.data.as_mut().and_then(|s| s.session.as_mut()) {
        let span = session.span.clone();
        span.in_scope(|| session.abort());
    }
    Status::Continue
}

/// The connection closes.
async fn close(cx: &mut Context<Slot>) -> Status {
    if let Some(mut session) = cx.data.as_mut().and_then(|s| s.session.take()) {
        let span = session.span.clone();
        span.in_scope(|| {
            session.close();
            tracing::debug!("close");
        });
    }
    Status::Continue
}
