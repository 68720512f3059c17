"""Drives a running vaultgate with the official openai SDK.

Environment: GATEWAY_URL, GATEWAY_KEY (a key that may use MODEL), MODEL, and optionally
DENIED_MODEL (a model GATEWAY_KEY may not use). Exits non-zero on the first failed expectation.
"""

import os
import sys

import openai

base_url = os.environ["GATEWAY_URL"] + "/v1"
key = os.environ["GATEWAY_KEY"]
model = os.environ["MODEL"]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)

chat = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Say hello"}]
)
assert chat.choices[0].message.content, chat
assert chat.usage.total_tokens > 0, chat.usage

text = ""
usage = None
stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Say hello"}],
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage
assert text, "no streamed text"
assert usage is not None and usage.total_tokens > 0, "no usage chunk though it was asked for"

embedding = client.embeddings.create(model=model, input=["a", "b"])
assert len(embedding.data) >= 1 and embedding.data[0].embedding, embedding

models = [m.id for m in client.models.list()]
assert model in models, models

bad = openai.OpenAI(base_url=base_url, api_key="sk-not-a-real-key", max_retries=0)
try:
    bad.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    sys.exit("a bad key was accepted")
except openai.AuthenticationError as error:
    assert error.status_code == 401, error

denied = os.environ.get("DENIED_MODEL")
if denied:
    assert denied not in models, models
    try:
        client.chat.completions.create(model=denied, messages=[{"role": "user", "content": "x"}])
        sys.exit("a model outside the key's list was allowed")
    except openai.AuthenticationError as error:
        assert error.status_code == 401, error

print("openai SDK checks passed")
