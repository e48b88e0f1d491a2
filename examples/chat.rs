//! A multi-room chat over WebSocket: the page is served by solo, and its
//! WebSocket goes to the same server.
//!
//! ```text
//! cargo run --release --example chat -- --port 8080
//! ```
//! Prints the page's URL and the `ws://` URL of the WebSocket endpoint. A
//! client joins a room with `/ws?room=NAME&name=NICK` (no room: `lobby`);
//! every text message it sends goes to everyone in its room, itself
//! included, as `NICK: text`. `/echo` echoes any message, for trying a
//! client. Each member has a queue of 64 messages: a member that falls
//! further behind is disconnected (1008) rather than slowing the room.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use solo::http::ws::{self, Message, WebSocket, WsConfig};
use solo::http::{Request, Response, Server};
use solo::sync::mpsc;

const PAGE: &str = include_str!("assets/chat.html");

/// A member of a room: its id and its queue of outgoing text.
type Member = (u64, mpsc::Sender<String>);

/// The rooms, and who is in each.
#[derive(Default)]
struct Rooms {
    rooms: RefCell<HashMap<String, Vec<Member>>>,
    next_id: Cell<u64>,
}

impl Rooms {
    fn join(&self, room: &str) -> (u64, mpsc::Receiver<String>) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = mpsc::channel(64);
        self.rooms
            .borrow_mut()
            .entry(room.to_string())
            .or_default()
            .push((id, tx));
        (id, rx)
    }

    fn leave(&self, room: &str, id: u64) {
        let mut rooms = self.rooms.borrow_mut();
        if let Some(members) = rooms.get_mut(room) {
            members.retain(|(m, _)| *m != id);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Sends `line` to everyone in `room`; a member whose queue is full is
    /// dropped (its writer then closes its socket).
    fn say(&self, room: &str, line: String) {
        if let Some(members) = self.rooms.borrow_mut().get_mut(room) {
            members.retain(|(_, tx)| tx.try_send(line.clone()).is_ok());
        }
    }
}

fn valid(name: &str) -> bool {
    !name.is_empty() && name.len() <= 32 && name.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c))
}

async fn member(socket: WebSocket, rooms: Rc<Rooms>, room: String, nick: String) {
    let (id, mut outgoing) = rooms.join(&room);
    let (mut reader, mut writer) = socket.split();
    let forward = solo::spawn(async move {
        while let Some(line) = outgoing.recv().await {
            if writer.send(Message::Text(line)).await.is_err() {
                return;
            }
        }
        // Dropped from the room for falling behind (or the room is gone).
        let _ = writer.close(1008, "too far behind").await;
    });
    rooms.say(&room, format!("* {nick} joined {room}"));
    while let Some(Ok(message)) = reader.recv().await {
        if let Message::Text(text) = message {
            rooms.say(&room, format!("{nick}: {text}"));
        }
    }
    rooms.leave(&room, id);
    rooms.say(&room, format!("* {nick} left"));
    forward.abort();
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut port = 8080u16;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let p = args
                    .next()
                    .ok_or_else(|| std::io::Error::other("--port needs a number"))?;
                port = p.parse().map_err(std::io::Error::other)?;
            }
            other => return Err(std::io::Error::other(format!("unknown argument {other:?}"))),
        }
    }
    let rooms = Rc::new(Rooms::default());
    let server = Server::bind(("127.0.0.1", port))?
        .get("/", |_req: Request| async {
            Response::text(PAGE).content_type("text/html; charset=utf-8")
        })
        .get("/ws", move |req: Request| {
            let rooms = rooms.clone();
            let room = req.query_param("room").map_or("lobby".into(), |r| r.into_owned());
            let nick = req.query_param("name").map_or("guest".into(), |n| n.into_owned());
            async move {
                if !valid(&room) || !valid(&nick) {
                    return Response::text("room and name: letters, digits, '-', '_', '.'\n").with_status(400);
                }
                ws::upgrade(&req, WsConfig::default(), move |socket| {
                    member(socket, rooms, room, nick)
                })
            }
        })
        .get("/echo", |req: Request| async move {
            ws::upgrade(&req, WsConfig::default(), |mut socket| async move {
                while let Some(Ok(message)) = socket.recv().await {
                    if let Message::Text(_) | Message::Binary(_) = message {
                        if socket.send(message).await.is_err() {
                            break;
                        }
                    }
                }
            })
        });
    let addr = server.local_addr()?;
    println!("chat: open http://{addr}/ (WebSocket: ws://{addr}/ws?room=lobby&name=you)");
    server.run()
}
