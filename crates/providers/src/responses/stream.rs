//! A chat completion stream as a Responses API event stream, for clients of `/v1/responses`
//! served by chat deployments: `response.created`, one output item per message, reasoning or
//! tool call (`response.output_item.added` … `.done`, with their text and argument deltas), then
//! `response.completed` (or `.incomplete`) carrying the whole response and its usage.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{
    call_item, custom_tool_names, echoed, ending, item_id, response_object, responses_usage,
    translated_id,
};
use crate::now_secs;
use crate::sse::{SseReader, Translate};

#[derive(Debug)]
enum Kind {
    Message,
    Reasoning,
    Call {
        call_id: String,
        name: String,
        custom: bool,
    },
}

/// One output item as it is streamed: its text (or arguments) so far.
#[derive(Debug)]
struct Item {
    id: String,
    kind: Kind,
    text: String,
    done: bool,
}

impl Item {
    fn json(&self) -> Value {
        let status = if self.done {
            "completed"
        } else {
            "in_progress"
        };
        match &self.kind {
            Kind::Message => json!({"type": "message", "id": self.id, "status": status,
                "role": "assistant", "content": [output_text(&self.text)]}),
            Kind::Reasoning => json!({"type": "reasoning", "id": self.id,
                "summary": [{"type": "summary_text", "text": self.text}]}),
            Kind::Call {
                call_id,
                name,
                custom,
            } => call_item(call_id, name, &self.text, *custom, status),
        }
    }
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// Incremental translator of one OpenAI chat completion stream into Responses events. Takes
/// upstream bytes cut anywhere and returns whole frames. Ask the upstream for
/// `stream_options.include_usage` so `response.completed` can carry token counts.
#[derive(Debug)]
pub struct ResponsesStreamTranslator {
    /// The request's members the response object echoes.
    request: Map<String, Value>,
    model: String,
    provider: String,
    deployment: String,
    custom: Vec<String>,
    sse: SseReader,
    sequence: u64,
    /// The response id and the upstream id item ids are made from, once started.
    id: Option<(String, String)>,
    created_at: u64,
    items: Vec<Item>,
    /// The message or reasoning item deltas go to.
    open: Option<usize>,
    /// Chat tool call index → item index.
    tools: Vec<(u64, usize)>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    /// The response object of `response.completed` (or `.incomplete`), once sent.
    completed: Option<Value>,
}

impl ResponsesStreamTranslator {
    /// `request` is the client's Responses request (echoed in the response object), `model` the
    /// name it asked for; `provider` and `deployment` go into the response id.
    pub fn new(
        request: &Map<String, Value>,
        model: &str,
        provider: &str,
        deployment: &str,
    ) -> Self {
        Self {
            custom: custom_tool_names(request),
            request: echoed(request),
            model: model.to_owned(),
            provider: provider.to_owned(),
            deployment: deployment.to_owned(),
            sse: SseReader::default(),
            sequence: 0,
            id: None,
            created_at: now_secs(),
            items: Vec::new(),
            open: None,
            tools: Vec::new(),
            finish_reason: None,
            usage: None,
            completed: None,
        }
    }

    /// The whole response once the stream completed (`response.completed` or `.incomplete`
    /// was sent), taken once; `None` before and after a failure.
    pub fn take_completed(&mut self) -> Option<Value> {
        self.completed.take()
    }

    fn emit(&mut self, kind: &str, data: Value, out: &mut Vec<Bytes>) {
        let mut data = match data {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        data.insert("type".into(), json!(kind));
        data.insert("sequence_number".into(), json!(self.sequence));
        self.sequence += 1;
        out.push(Bytes::from(format!(
            "event: {kind}\ndata: {}\n\n",
            Value::Object(data)
        )));
    }

    fn response(&self, status: &str) -> Map<String, Value> {
        let id = self
            .id
            .as_ref()
            .map(|(id, _)| id.as_str())
            .unwrap_or_default();
        response_object(&self.request, id, &self.model, self.created_at, status)
    }

    /// `response.created` and `response.in_progress` before anything else.
    fn start(&mut self, chunk: &Value, out: &mut Vec<Bytes>) {
        if self.id.is_some() {
            return;
        }
        let upstream = chunk
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("chatcmpl{}", now_secs()), str::to_owned);
        if let Some(created) = chunk.get("created").and_then(Value::as_u64) {
            self.created_at = created;
        }
        let id = translated_id(&self.provider, &self.deployment);
        self.id = Some((id, upstream));
        let response = Value::Object(self.response("in_progress"));
        self.emit(
            "response.created",
            json!({ "response": response.clone() }),
            out,
        );
        self.emit("response.in_progress", json!({ "response": response }), out);
    }

    fn new_item(&mut self, prefix: &str, kind: Kind, out: &mut Vec<Bytes>) -> usize {
        let index = self.items.len();
        let base = self
            .id
            .as_ref()
            .map(|(_, up)| up.as_str())
            .unwrap_or_default();
        let id = match &kind {
            Kind::Call { call_id, .. } => item_id(prefix, call_id),
            _ => item_id(prefix, &format!("{base}{index}")),
        };
        let item = Item {
            id,
            kind,
            text: String::new(),
            done: false,
        };
        let mut added = item.json();
        // A message starts without content: its part is added next.
        if let Kind::Message = item.kind {
            added["content"] = json!([]);
        }
        if let Kind::Reasoning = item.kind {
            added["summary"] = json!([]);
        }
        self.items.push(item);
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
            out,
        );
        index
    }

    /// The open item if it is of the kind asked for, else a new one (closing the open one).
    fn open_item(&mut self, message: bool, out: &mut Vec<Bytes>) -> usize {
        if let Some(index) = self.open
            && let Some(item) = self.items.get(index)
            && matches!(
                (&item.kind, message),
                (Kind::Message, true) | (Kind::Reasoning, false)
            )
        {
            return index;
        }
        self.close_open(out);
        let index = if message {
            let index = self.new_item("msg", Kind::Message, out);
            let item_id = self.items[index].id.clone();
            self.emit(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": index, "content_index": 0,
                    "part": output_text("")}),
                out,
            );
            index
        } else {
            let index = self.new_item("rs", Kind::Reasoning, out);
            let item_id = self.items[index].id.clone();
            self.emit(
                "response.reasoning_summary_part.added",
                json!({"item_id": item_id, "output_index": index, "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""}}),
                out,
            );
            index
        };
        self.open = Some(index);
        index
    }

    fn text_delta(&mut self, text: &str, message: bool, out: &mut Vec<Bytes>) {
        let index = self.open_item(message, out);
        let item = &mut self.items[index];
        item.text.push_str(text);
        let item_id = item.id.clone();
        if message {
            self.emit(
                "response.output_text.delta",
                json!({"item_id": item_id, "output_index": index, "content_index": 0,
                    "delta": text, "logprobs": []}),
                out,
            );
        } else {
            self.emit(
                "response.reasoning_summary_text.delta",
                json!({"item_id": item_id, "output_index": index, "summary_index": 0,
                    "delta": text}),
                out,
            );
        }
    }

    fn tool_delta(&mut self, call: &Value, out: &mut Vec<Bytes>) {
        let tool_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let function = call.get("function").unwrap_or(&Value::Null);
        let known = self
            .tools
            .iter()
            .find(|(t, _)| *t == tool_index)
            .map(|(_, i)| *i);
        let index = match known {
            Some(index) => index,
            None => {
                self.close_open(out);
                let field =
                    |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
                let call_id = field(call, "id")
                    .unwrap_or_else(|| format!("call_{}_{tool_index}", self.sequence));
                let name = field(function, "name").unwrap_or_default();
                let custom = self.custom.contains(&name);
                let prefix = if custom { "ctc" } else { "fc" };
                let index = self.new_item(
                    prefix,
                    Kind::Call {
                        call_id,
                        name,
                        custom,
                    },
                    out,
                );
                self.tools.push((tool_index, index));
                index
            }
        };
        let Some(arguments) = function
            .get("arguments")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let item = &mut self.items[index];
        item.text.push_str(arguments);
        // A custom tool's input is inside the JSON arguments: it is sent whole when done.
        let streamed = matches!(item.kind, Kind::Call { custom: false, .. });
        let item_id = item.id.clone();
        if streamed {
            self.emit(
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": index, "delta": arguments}),
                out,
            );
        }
    }

    fn close_open(&mut self, out: &mut Vec<Bytes>) {
        if let Some(index) = self.open.take() {
            self.close_item(index, out);
        }
    }

    fn close_item(&mut self, index: usize, out: &mut Vec<Bytes>) {
        let Some(item) = self.items.get_mut(index) else {
            return;
        };
        if item.done {
            return;
        }
        item.done = true;
        let (item_id, text) = (item.id.clone(), item.text.clone());
        let done = item.json();
        let call = match &item.kind {
            Kind::Call { custom, name, .. } => Some((*custom, name.clone())),
            _ => None,
        };
        let message = matches!(item.kind, Kind::Message);
        match call {
            None if message => {
                self.emit(
                    "response.output_text.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0,
                        "text": text, "logprobs": []}),
                    out,
                );
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0,
                        "part": output_text(&text)}),
                    out,
                );
            }
            None => {
                self.emit(
                    "response.reasoning_summary_text.done",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0,
                        "text": text}),
                    out,
                );
                self.emit(
                    "response.reasoning_summary_part.done",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0,
                        "part": {"type": "summary_text", "text": text}}),
                    out,
                );
            }
            Some((custom, name)) => {
                if custom {
                    let input = done.get("input").cloned().unwrap_or(Value::Null);
                    self.emit(
                        "response.custom_tool_call_input.done",
                        json!({"item_id": item_id, "output_index": index, "input": input}),
                        out,
                    );
                } else {
                    self.emit(
                        "response.function_call_arguments.done",
                        json!({"item_id": item_id, "output_index": index, "arguments": text,
                            "name": name}),
                        out,
                    );
                }
            }
        }
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": done}),
            out,
        );
    }

    fn close_all(&mut self, out: &mut Vec<Bytes>) {
        self.open = None;
        for index in 0..self.items.len() {
            self.close_item(index, out);
        }
    }

    /// The last event: `response.completed` (or `.incomplete`) with the whole response.
    fn complete(&mut self, out: &mut Vec<Bytes>) {
        self.start(&Value::Null, out);
        self.close_all(out);
        let (status, incomplete) = ending(self.finish_reason.as_deref());
        let mut response = self.response(status);
        response.insert("incomplete_details".into(), incomplete);
        response.insert("output".into(), self.items.iter().map(Item::json).collect());
        response.insert(
            "usage".into(),
            responses_usage(self.usage.as_ref().unwrap_or(&Value::Null)),
        );
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let response = Value::Object(response);
        self.completed = Some(response.clone());
        self.emit(kind, json!({ "response": response }), out);
        self.sse.close();
    }

    /// `response.failed` with what was produced so far, then nothing more.
    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<Bytes>) {
        self.start(&Value::Null, out);
        let mut response = self.response("failed");
        response.insert("error".into(), json!({"code": code, "message": message}));
        response.insert("output".into(), self.items.iter().map(Item::json).collect());
        self.emit("response.failed", json!({ "response": response }), out);
        self.sse.close();
    }
}

impl Translate for ResponsesStreamTranslator {
    fn reader(&mut self) -> &mut SseReader {
        &mut self.sse
    }

    fn reader_ref(&self) -> &SseReader {
        &self.sse
    }

    fn handle_data(&mut self, data: &str, out: &mut Vec<Bytes>) {
        if data.trim() == "[DONE]" {
            self.complete(out);
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            self.fail(
                "server_error",
                "upstream sent a malformed stream event",
                out,
            );
            return;
        };
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream stream error")
                .to_owned();
            let code = error
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("server_error")
                .to_owned();
            self.fail(&code, &message, out);
            return;
        }
        self.start(&chunk, out);
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        let text = |name: &str| {
            delta
                .get(name)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        };
        if let Some(reasoning) = text("reasoning_content") {
            self.text_delta(reasoning, false, out);
        }
        if let Some(content) = text("content") {
            self.text_delta(content, true, out);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.tool_delta(call, out);
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
            self.close_all(out);
        }
    }

    fn on_line_too_long(&mut self, out: &mut Vec<Bytes>) {
        self.fail(
            "server_error",
            "upstream sent an oversized stream line",
            out,
        );
    }

    fn on_end(&mut self, out: &mut Vec<Bytes>) {
        if self.finish_reason.is_some() {
            self.complete(out);
        } else {
            self.fail(
                "server_error",
                "upstream stream ended before the response was complete",
                out,
            );
        }
    }
}
