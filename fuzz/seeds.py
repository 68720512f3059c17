"""Writes the committed seed corpus (fuzz/corpus/<target>/seed-*) from the test fixtures.

Run from the repository root after a fixture changes: python3 fuzz/seeds.py
Each seed is an input as its target reads it (most start with a knob byte).
"""

import json
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates/providers/tests/fixtures"
CORPUS = ROOT / "fuzz/corpus"


def load(name):
    return json.loads((FIXTURES / name).read_text())


def dump(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def write(target, seeds):
    folder = CORPUS / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for index, seed in enumerate(seeds):
        (folder / f"seed-{index:03}").write_bytes(seed)


def main():
    configs = [ROOT / "examples/quickstart.yaml", ROOT / "examples/config.yaml",
               ROOT / "crates/vaultgate/tests/fixtures/litellm_example_config.yaml"]
    write("config", [path.read_bytes() for path in configs])

    openai = [case["openai"] for case in load("anthropic/chat_to_messages.json")]
    openai += [case["openai"] for case in load("bedrock/chat_to_converse.json")]
    native = [case["anthropic"] for case in load("anthropic/native_messages_to_chat.json")]
    bodies = [dump(body) for body in openai[:12]]
    bodies += [
        b'{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[]}',
        b'{"mod\\u0065l":"m","fallbacks":["x"],"num_retries":2,"metadata":{"a":1},"user":"u"}',
        b'{"messages":[],"model":"m","stream_options":null,"mock_response":"hi","x":[1e400]}',
    ]
    write("chat_body", bodies)

    requests = [bytes([index % 256]) + dump(body) for index, body in enumerate(openai + native)]
    write("translate_request", requests)

    answers = [case["anthropic"] for case in load("anthropic/messages_to_chat.json")]
    answers += [case["converse"] for case in load("bedrock/converse_to_chat.json")]
    answers += [load("gemini/answer_tool.json"), load("ollama/chat_answer.json")]
    answers += [case["openai"] for case in load("anthropic/native_chat_to_messages.json")]
    errors = [(13, dump(a)) for a in answers]  # status 200
    errors += [(3, (FIXTURES / "gemini/error_invalid_key.json").read_bytes())]
    errors += [(index, dump(case["body"])) for index, case in enumerate(load("anthropic/errors.json"))]
    write("translate_answer", [bytes([status]) + body for status, body in errors])

    # Knob byte: translator in the low 3 bits, chunk size above (0: whole, else n bytes).
    streams = []
    for size in (0, 1, 7):
        for knob, name in [(0, "anthropic/stream_text.sse"), (0, "anthropic/stream_tool_use.sse"),
                           (0, "anthropic/stream_thinking_length.sse"),
                           (0, "anthropic/stream_error.sse"), (5, "gemini/stream_text.sse"),
                           (5, "gemini/stream_thinking_tool.sse"),
                           (6, "anthropic/native_stream_tool_use.sse"),
                           (2, "ollama/chat_stream_tool.jsonl"), (4, "ollama/generate_stream.jsonl")]:
            streams.append(bytes([knob | size << 3]) + (FIXTURES / name).read_bytes())
    write("translate_stream", streams)

    events = ["messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop",
              "messageStop", "metadata"]
    scripts = []
    for name in ["bedrock/stream_tool_use.events.json", "bedrock/stream_exception.events.json"]:
        pieces = []
        for event in load(name):
            (kind, payload), = event.items()
            code = events.index(kind) if kind in events else 7
            pieces.append(bytes([code]) + dump(payload))
        for knob in (0, 2, 4 * 5):
            scripts.append(bytes([knob]) + b"\xff".join(pieces))
    write("bedrock_stream", scripts)


def dictionary():
    """fuzz/json.dict: JSON tokens and every member name and short string of the fixtures, so
    mutations make well-formed requests and answers more often."""
    words = {"{", "}", "[", "]", ",", ":", '""', "null", "true", "false", "0", "-1", "1e400",
             "\\u0000", "data: ", "event: ", "\n\n", "\r\n", "[DONE]"}

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                words.add(json.dumps(key))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) <= 24:
            words.add(json.dumps(value))

    for path in sorted(FIXTURES.glob("*/*.json")):
        walk(json.loads(path.read_text()))
    lines = [libfuzzer_word(word) for word in sorted(words)]
    (ROOT / "fuzz/json.dict").write_text("\n".join(lines) + "\n")


def libfuzzer_word(word):
    """A dictionary line: printable ASCII as is, `"` and `\\` escaped, other bytes as \\xNN."""
    out = []
    for byte in word.encode():
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\x{byte:02X}")
    return '"' + "".join(out) + '"'


if __name__ == "__main__":
    dictionary()
    main()
