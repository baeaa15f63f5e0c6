//! The indymilter callbacks: each takes the [`Session`] out of the
//! context, runs the session's step inside the connection span, and puts
//! it back. Stages run at the callbacks design.md names: skip lists and
//! the FCrDNS lookups at CONNECT; helo-syntax, the fcrdns verdict,
//! helo-dns and spf-helo at HELO; spf-mailfrom at MAIL; the reply at RCPT
//! (or as early as possible); headers at end of message.

use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use indymilter::{
    Actions, Callbacks, Context, ContextActions, EomContext, MacroStage, NegotiateContext,
    ProtoOpts, SetErrorReply, SocketInfo, Status,
};
use tracing::Instrument;

use super::State;
use super::fields::{fold, reply_text};
use super::session::{Answer, Session};

/// The macros tollgate asks the MTA for, per stage.
/// Postfix assigns the queue id (`i`) only once the queue file is open,
/// so it first arrives at DATA; Sendmail sends it at MAIL.
const MACROS: [(MacroStage, &str); 6] = [
    (
        MacroStage::Connect,
        "j {client_addr} {client_name} {daemon_name}",
    ),
    (MacroStage::Mail, "i {auth_authen} {mail_addr}"),
    (MacroStage::Rcpt, "i"),
    (MacroStage::Data, "i"),
    (MacroStage::Eoh, "i"),
    (MacroStage::Eom, "i"),
];

fn text(s: &CStr) -> String {
    String::from_utf8_lossy(s.to_bytes()).into_owned()
}

fn macro_text(macros: &indymilter::Macros, name: &str) -> Option<String> {
    let name = CString::new(name).ok()?;
    macros.get(&name).map(text).filter(|v| !v.is_empty())
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
    data.as_mut().and_then(|slot| slot.session.take())
}

fn put(data: &mut Option<Slot>, session: Box<Session>) {
    data.get_or_insert_with(Slot::default).session = Some(session);
}

/// The callbacks over the shared state.
pub(crate) fn callbacks(state: Arc<State>) -> Callbacks<Slot> {
    let connect_state = state;
    Callbacks::new()
        .on_negotiate(|cx: &mut NegotiateContext<Slot>, actions, opts| {
            Box::pin(async move {
                cx.requested_actions = actions & (Actions::ADD_HEADER | Actions::CHANGE_HEADER);
                let unwanted = ProtoOpts::NO_BODY | ProtoOpts::NO_UNKNOWN | ProtoOpts::NO_DATA;
                // CONNECT never refuses and headers are only read: where
                // the MTA allows it, it need not wait for a reply to them
                // (Postfix then sends all headers in one write).
                let noreply = opts & (ProtoOpts::NOREPLY_CONNECT | ProtoOpts::NOREPLY_HEADER);
                cx.requested_opts |= (opts & unwanted) | noreply;
                cx.data = Some(Slot {
                    noreply,
                    session: None,
                });
                for (stage, names) in MACROS {
                    cx.requested_macros
                        .insert(stage, CString::new(names).expect("no NUL in macro names"));
                }
                Status::Continue
            })
        })
        .on_connect(move |cx: &mut Context<Slot>, _hostname: CString, socket: SocketInfo| {
            let state = Arc::clone(&connect_state);
            Box::pin(async move {
                let ip = match socket {
                    SocketInfo::Inet(addr) => Some(addr.ip()),
                    _ => macro_text(&cx.macros, "{client_addr}").and_then(|a| a.parse::<IpAddr>().ok()),
                };
                let mta_host = macro_text(&cx.macros, "j");
                let id = state.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                let guard = state.session_opened();
                let session = Session::new(id, state.current(), guard, ip, mta_host.as_deref());
                session.span.in_scope(|| tracing::debug!("connect"));
                put(&mut cx.data, Box::new(session));
                cx.data
                    .as_ref()
                    .map_or(Status::Continue, |slot| slot.go_on(ProtoOpts::NOREPLY_CONNECT))
            })
        })
        .on_helo(|cx: &mut Context<Slot>, helo: CString| {
            Box::pin(async move {
                let Some(mut session) = take(&mut cx.data) else {
                    return Status::Continue;
                };
                let span = session.span.clone();
                let answer = session.helo(text(&helo)).instrument(span).await;
                put(&mut cx.data, session);
                refuse(&mut cx.reply, answer)
            })
        })
        .on_mail(|cx: &mut Context<Slot>, args: Vec<CString>| {
            Box::pin(async move {
                let Some(mut session) = take(&mut cx.data) else {
                    return Status::Continue;
                };
                let sender = args.first().map(|a| text(a)).unwrap_or_default();
                let sender = sender.trim().trim_start_matches('<').trim_end_matches('>').to_owned();
                let auth = macro_text(&cx.macros, "{auth_authen}");
                let span = session.span.clone();
                let answer = session.mail(sender, auth).instrument(span).await;
                if let Some(id) = macro_text(&cx.macros, "i") {
                    session.span.record("queue_id", id.as_str());
                    session.msg.queue_id = Some(id);
                }
                put(&mut cx.data, session);
                refuse(&mut cx.reply, answer)
            })
        })
        .on_rcpt(|cx: &mut Context<Slot>, args: Vec<CString>| {
            Box::pin(async move {
                let Some(mut session) = take(&mut cx.data) else {
                    return Status::Continue;
                };
                let rcpt = args.first().map(|a| text(a)).unwrap_or_default();
                if let Some(id) = macro_text(&cx.macros, "i") {
                    session.msg.queue_id = Some(id);
                }
                let answer = session.span.clone().in_scope(|| session.rcpt(rcpt));
                put(&mut cx.data, session);
                refuse(&mut cx.reply, answer)
            })
        })
        .on_header(|cx: &mut Context<Slot>, name: CString, value: CString| {
            Box::pin(async move {
                let Some(slot) = cx.data.as_mut() else {
                    return Status::Continue;
                };
                if let Some(session) = slot.session.as_mut() {
                    session.header(&text(&name), &text(&value));
                }
                slot.go_on(ProtoOpts::NOREPLY_HEADER)
            })
        })
        .on_eom(|cx: &mut EomContext<Slot>| {
            Box::pin(async move {
                let Some(mut session) = take(&mut cx.data) else {
                    return Status::Continue;
                };
                if let Some(id) = macro_text(&cx.macros, "i") {
                    session.span.record("queue_id", id.as_str());
                    session.msg.queue_id = Some(id);
                }
                let span = session.span.clone();
                async {
                    // Forged verdicts must not pass (RFC 8601 §5): delete
                    // from the last to the first so indexes stay valid.
                    for index in session.msg.forged_ar.iter().rev() {
                        if let Err(e) = cx
                            .actions
                            .change_header("Authentication-Results", *index, None::<CString>)
                            .await
                        {
                            tracing::warn!(error = %e, index, "cannot remove a forged Authentication-Results");
                        }
                    }
                    // Insert bottom-most first, so the first ends on top.
                    let eval = session.evaluation();
                    for (name, value) in session.headers(&eval).iter().rev() {
                        if let Err(e) = cx.actions.insert_header(0, *name, fold(name, value)).await {
                            tracing::warn!(error = %e, header = name, "cannot add header");
                        }
                    }
                    session.log_message("delivered", &eval);
                }
                .instrument(span)
                .await;
                session.msg = Default::default();
                put(&mut cx.data, session);
                Status::Continue
            })
        })
        .on_abort(|cx: &mut Context<Slot>| {
            Box::pin(async move {
                if let Some(session) = cx.data.as_mut().and_then(|s| s.session.as_mut()) {
                    let span = session.span.clone();
                    span.in_scope(|| session.finish_message("aborted"));
                    session.msg = Default::default();
                }
                Status::Continue
            })
        })
        .on_close(|cx: &mut Context<Slot>| {
            Box::pin(async move {
                if let Some(mut session) = take(&mut cx.data) {
                    let span = session.span.clone();
                    span.in_scope(|| {
                        session.close();
                        tracing::debug!("close");
                    });
                }
                Status::Continue
            })
        })
}
