//! The Responses API ⇄ chat completions translation (request, answer, stream), the ids that
//! name a deployment, and the id rewriting of passed-through answers and streams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use serde_json::{Map, Value, json};
use vaultgate_core::Error;
use vaultgate_providers::TranslateStream;
use vaultgate_providers::responses::{
    IdRewriter, ResponsesStreamTranslator, chat_response_to_responses, continued, conversation,
    decode_id, encode_id, input_items, responses_to_chat_request, rewrite_answer_id,
};

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn translate(request: Value) -> Result<Value, Error> {
    responses_to_chat_request(&object(request), false).map(Value::Object)
}

fn bad_param(result: Result<Value, Error>) -> (String, String) {
    match result {
        Err(Error::BadRequest { message, param }) => (param.unwrap_or_default(), message),
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[test]
fn a_string_input_and_instructions_become_system_and_user_messages() {
    let chat = translate(json!({"model": "m", "instructions": "Be brief.", "input": "hi",
        "max_output_tokens": 50, "temperature": 0.3, "stream": true, "store": false,
        "metadata": {"k": "v"}, "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}}}))
    .unwrap();
    assert_eq!(
        chat,
        json!({"model": "m", "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            "max_tokens": 50, "temperature": 0.3, "stream": true, "reasoning_effort": "low",
            "response_format": {"type": "json_schema", "json_schema": {"name": "out",
                "schema": {"type": "object"}, "strict": true}}})
    );
}

#[test]
fn input_items_become_messages_with_tool_calls_and_results_in_order() {
    let chat = translate(json!({"model": "m", "input": [
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is in "},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "look", "arguments": "{\"q\":1}"},
        {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "a hat"}]},
        {"type": "custom_tool_call", "call_id": "call_3", "name": "patch", "input": "*** Begin"},
        {"type": "custom_tool_call_output", "call_id": "call_3", "output": "done"}],
        "tools": [
            {"type": "function", "name": "look", "description": "Looks.", "parameters": {"type": "object"}, "strict": true},
            {"type": "custom", "name": "patch", "description": "Patches."}],
        "tool_choice": {"type": "function", "name": "look"}, "parallel_tool_calls": false}))
    .unwrap();
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "Use tools."})
    );
    assert_eq!(
        messages[1]["content"],
        json!([{"type": "text", "text": "What is in "},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}])
    );
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"q\":1}"}},
            {"id": "call_2", "type": "function", "function": {"name": "look", "arguments": "{}"}}]})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "a cat"})
    );
    assert_eq!(
        messages[4],
        json!({"role": "tool", "tool_call_id": "call_2", "content": "a hat"})
    );
    // A tool call after tool results starts a new assistant turn.
    assert_eq!(messages[5]["role"], "assistant");
    assert_eq!(messages[5]["content"], Value::Null);
    assert_eq!(
        messages[5]["tool_calls"][0]["function"],
        json!({"name": "patch", "arguments": "{\"input\":\"*** Begin\"}"})
    );
    assert_eq!(messages[6]["tool_call_id"], "call_3");
    assert_eq!(messages.len(), 7);
    assert_eq!(
        chat["tools"],
        json!([
            {"type": "function", "function": {"name": "look", "description": "Looks.",
                "parameters": {"type": "object"}, "strict": true}},
            {"type": "function", "function": {"name": "patch", "description": "Patches.",
                "parameters": {"type": "object", "properties": {"input": {"type": "string",
                    "description": "The tool's input, as free-form text."}}, "required": ["input"]}}}])
    );
    assert_eq!(
        chat["tool_choice"],
        json!({"type": "function", "function": {"name": "look"}})
    );
    assert_eq!(chat["parallel_tool_calls"], false);
}

#[test]
fn what_only_openai_can_do_is_refused_or_dropped_with_drop_params() {
    let web = json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]});
    let (param, message) = bad_param(translate(web.clone()));
    assert_eq!(param, "tools[0]");
    assert!(message.contains("\"web_search\""), "{message}");
    let dropped = responses_to_chat_request(&object(web), true).unwrap();
    assert!(!dropped.contains_key("tools"), "{dropped:?}");

    let (param, _) = bad_param(translate(
        json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}),
    ));
    assert_eq!(param, "previous_response_id");
    let (param, _) = bad_param(translate(
        json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
    ));
    assert_eq!(param, "input[0]");
    let (param, _) = bad_param(translate(json!({"model": "m"})));
    assert_eq!(param, "input");
    let (param, _) = bad_param(translate(json!({"model": "m", "input": [
        {"type": "function_call_output", "output": "x"}]})));
    assert_eq!(param, "input[0].call_id");
}

#[test]
fn a_chat_answer_becomes_a_response_with_text_tool_calls_and_usage() {
    let request = object(
        json!({"model": "m", "input": "hi", "instructions": "Be brief.",
        "tools": [{"type": "function", "name": "look"}, {"type": "custom", "name": "patch"}],
        "max_output_tokens": 9}),
    );
    let chat = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
        "model": "upstream", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Looking.", "reasoning_content": "think",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"q\":1}"}},
                {"id": "call_2", "type": "function", "function": {"name": "patch", "arguments": "{\"input\":\"diff\"}"}}]}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 3}}});
    let response = chat_response_to_responses(&chat, &request, "m", "resp_x");
    assert_eq!(response["id"], "resp_x");
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "m");
    assert_eq!(response["created_at"], 1_700_000_000);
    assert_eq!(response["instructions"], "Be brief.");
    assert_eq!(response["max_output_tokens"], 9);
    assert_eq!(response["store"], false);
    let output = response["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(output[0]["summary"][0]["text"], "think");
    assert_eq!(output[1]["type"], "message");
    assert_eq!(output[1]["role"], "assistant");
    assert_eq!(
        output[1]["content"],
        json!([{"type": "output_text", "text": "Looking.", "annotations": [], "logprobs": []}])
    );
    assert_eq!(
        output[2],
        json!({"type": "function_call", "id": "fc_call1", "call_id": "call_1", "name": "look",
            "arguments": "{\"q\":1}", "status": "completed"})
    );
    assert_eq!(output[3]["type"], "custom_tool_call");
    assert_eq!(output[3]["input"], "diff");
    assert_eq!(
        response["usage"],
        json!({"input_tokens": 11, "input_tokens_details": {"cached_tokens": 3},
            "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15})
    );

    let cut = json!({"id": "c", "choices": [{"finish_reason": "length",
        "message": {"role": "assistant", "content": "Once upon"}}]});
    let response = chat_response_to_responses(&cut, &request, "m", "resp_y");
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(response["output"][0]["status"], "incomplete");
}

/// Events of a translated stream as (type, data), checked for sequence numbers.
fn parse_events(frames: &[Bytes]) -> Vec<(String, Value)> {
    let text: String = frames
        .iter()
        .map(|f| String::from_utf8(f.to_vec()).unwrap())
        .collect();
    let mut out = Vec::new();
    for (i, event) in text.split_terminator("\n\n").enumerate() {
        let (name, data) = event.split_once('\n').unwrap();
        let name = name.strip_prefix("event: ").unwrap();
        let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], name, "{event}");
        assert_eq!(data["sequence_number"], i, "{event}");
        out.push((name.to_owned(), data));
    }
    out
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1_700_000_001,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {chunk}\n\n")
}

#[test]
fn a_chat_stream_becomes_response_events_with_text_then_a_tool_call() {
    let request = object(json!({"model": "m", "input": "hi", "stream": true}));
    let mut translator = ResponsesStreamTranslator::new(&request, "m", "anthropic", "claude-0");
    let upstream = [
        chunk(json!({"role": "assistant", "content": "Hel"}), None),
        chunk(json!({"content": "lo"}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
            "function": {"name": "look", "arguments": "{\"q\""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        "data: {\"id\":\"chatcmpl-9\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7}}\n\n".to_owned(),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    // Cut anywhere, even inside a UTF-8 sequence or a frame.
    let mut frames = Vec::new();
    for piece in upstream.as_bytes().chunks(7) {
        frames.extend(translator.push(piece));
    }
    frames.extend(translator.finish());
    assert!(translator.is_done());
    let events = parse_events(&frames);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &events[0].1["response"];
    let id = created["id"].as_str().unwrap();
    let decoded = decode_id(id).unwrap();
    assert_eq!(
        (decoded.provider.as_str(), decoded.deployment.as_str()),
        ("anthropic", "claude-0")
    );
    // The id's own part is made by the gateway (a chat id need not be unique).
    assert!(
        decoded.upstream.starts_with("resp_"),
        "{}",
        decoded.upstream
    );
    assert_eq!(created["status"], "in_progress");
    assert_eq!(events[6].1["text"], "Hello");
    assert_eq!(events[6].1["output_index"], 0);
    let call = &events[13].1["item"];
    assert_eq!(events[13].1["output_index"], 1);
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], "call_7");
    assert_eq!(call["arguments"], "{\"q\":1}");
    assert_eq!(call["status"], "completed");
    assert_eq!(events[10].1["item_id"], call["id"]);
    let done = &events[14].1["response"];
    assert_eq!(done["id"], id);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["output"][1], *call);
    assert_eq!(done["usage"]["input_tokens"], 5);
    assert_eq!(done["usage"]["output_tokens"], 7);
    assert_eq!(done["usage"]["total_tokens"], 12);
    assert_eq!(translator.take_completed().as_ref(), Some(done));
    assert_eq!(translator.take_completed(), None, "taken once");
}

#[test]
fn a_cut_or_failing_chat_stream_ends_with_response_failed() {
    let request = object(json!({"model": "m", "input": "hi"}));
    let mut cut = ResponsesStreamTranslator::new(&request, "m", "gemini", "g-0");
    let mut frames = cut.push(chunk(json!({"content": "Hel"}), None).as_bytes());
    frames.extend(cut.finish());
    let events = parse_events(&frames);
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert!(
        last["response"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before")
    );
    assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Hel");
    assert_eq!(cut.take_completed(), None, "a failed response is not kept");

    let mut failing = ResponsesStreamTranslator::new(&request, "m", "gemini", "g-0");
    let frames = failing
        .push(b"data: {\"error\":{\"message\":\"overloaded\",\"code\":\"529\"}}\n\n".as_slice());
    let events = parse_events(&frames);
    assert_eq!(events[0].0, "response.created");
    assert_eq!(events[1].0, "response.in_progress");
    assert_eq!(
        events[2].1["response"]["error"],
        json!({"code": "529", "message": "overloaded"})
    );
    assert!(failing.is_done());

    // A stream cut by max tokens is incomplete, not failed.
    let mut long = ResponsesStreamTranslator::new(&request, "m", "gemini", "g-0");
    let mut frames = long.push(chunk(json!({"content": "Once"}), Some("length")).as_bytes());
    frames.extend(long.finish());
    let (name, last) = parse_events(&frames).pop().unwrap();
    assert_eq!(name, "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
}

#[test]
fn ids_name_the_deployment_and_litellms_ids_decode_too() {
    let id = encode_id("azure", "gpt-eu/1", "resp_abc");
    assert!(id.starts_with("resp_"));
    assert!(
        id[5..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{id} is not safe in a URL path"
    );
    let decoded = decode_id(&id).unwrap();
    assert_eq!(decoded.provider, "azure");
    assert_eq!(decoded.deployment, "gpt-eu/1");
    assert_eq!(decoded.upstream, "resp_abc");
    // LiteLLM's own encoding: padded standard base64 of the same layout.
    let litellm = "resp_bGl0ZWxsbTpjdXN0b21fbGxtX3Byb3ZpZGVyOm9wZW5haTttb2RlbF9pZDpncHQtNG87cmVzcG9uc2VfaWQ6cmVzcF9hYmMxMjM=";
    let decoded = decode_id(litellm).unwrap();
    assert_eq!(
        (
            decoded.provider.as_str(),
            decoded.deployment.as_str(),
            decoded.upstream.as_str()
        ),
        ("openai", "gpt-4o", "resp_abc123")
    );
    assert_eq!(decode_id("resp_67ebc9caabf48191bad495f24084ca27"), None);
    assert_eq!(decode_id("msg_abc"), None);
}

#[test]
fn passed_through_answers_and_streams_get_the_gateways_id_and_keep_their_bytes() {
    let body = Bytes::from_static(
        br#"{"id": "resp_up1", "object":"response","output":[{"id":"msg_1","content":[{"text":"the id is \"resp_up1\""}]}],"usage":{"input_tokens":1}}"#,
    );
    let rewritten = rewrite_answer_id(&body, "openai", "gpt-0");
    let ours = encode_id("openai", "gpt-0", "resp_up1");
    let expected = String::from_utf8(body.to_vec()).unwrap().replacen(
        "\"resp_up1\"",
        &format!("\"{ours}\""),
        1,
    );
    assert_eq!(String::from_utf8(rewritten.to_vec()).unwrap(), expected);
    assert_eq!(
        rewrite_answer_id(
            &Bytes::from_static(b"{\"object\":\"list\"}"),
            "openai",
            "gpt-0"
        ),
        Bytes::from_static(b"{\"object\":\"list\"}")
    );

    let created = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_up1\",\"status\":\"in_progress\"}}\n\n";
    let delta = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"delta\":\"Hi\"}\n\n";
    let completed = "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_up1\",\"status\":\"completed\"}}\n\n";
    let upstream = [created, delta, completed].concat();
    let mut rewriter = IdRewriter::new("openai", "gpt-0");
    let mut out = Vec::new();
    for piece in upstream.as_bytes().chunks(5) {
        out.extend(rewriter.push(piece));
    }
    assert!(rewriter.is_done(), "the stream ended with its last event");
    out.extend(rewriter.finish());
    let text: String = out
        .iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect();
    assert_eq!(
        text,
        upstream.replace("\"resp_up1\"", &format!("\"{ours}\""))
    );

    let mut cut = IdRewriter::new("openai", "gpt-0");
    let mut out = cut.push(created.as_bytes());
    out.extend(cut.push(b"event: response.output_text.delta\ndata: {\"ty"));
    out.extend(cut.finish());
    let last = String::from_utf8(out.last().unwrap().to_vec()).unwrap();
    assert!(last.starts_with("event: error\ndata: {"), "{last}");
    assert!(last.contains("ended before"), "{last}");
}

#[test]
fn a_follow_up_sends_the_stored_turns_before_its_own_input() {
    let first = object(json!({"model": "m", "instructions": "Be brief.", "input": "Call look."}));
    let items = input_items(&first);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["type"], "message");
    assert_eq!(items[0]["role"], "user");
    assert_eq!(items[0]["status"], "completed");
    assert_eq!(
        items[0]["content"],
        json!([{"type": "input_text", "text": "Call look."}])
    );
    assert!(items[0]["id"].as_str().unwrap().starts_with("msg_"));
    let answer = json!({"output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "look",
            "arguments": "{}", "status": "completed"}]});
    let history = conversation(Vec::new(), items, &answer);
    assert_eq!(history.len(), 3);
    let next = object(
        json!({"model": "m", "previous_response_id": "resp_x", "input": [
        {"type": "function_call_output", "call_id": "c1", "output": "a cat"}]}),
    );
    let request = continued(&next, history);
    assert!(request.get("previous_response_id").is_none());
    let chat = responses_to_chat_request(&request, false).unwrap();
    let messages = chat["messages"].as_array().unwrap();
    // No system message: instructions belong to the turn that sent them, as on OpenAI.
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(
        messages[0],
        json!({"role": "user", "content": "Call look."})
    );
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "c1");
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "c1", "content": "a cat"})
    );
}
