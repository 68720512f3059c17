"""Drives a running vaultgate's Responses API with the official openai SDK.

Environment: GATEWAY_URL, GATEWAY_KEY, MODEL (passed through to an OpenAI deployment) and
TRANSLATED_MODEL (served by a deployment that only speaks chat; its responses are stored by
the gateway). Exits non-zero on the first
failed expectation.
"""

import os
import sys

import openai

base_url = os.environ["GATEWAY_URL"] + "/v1"
client = openai.OpenAI(base_url=base_url, api_key=os.environ["GATEWAY_KEY"], max_retries=0, timeout=30)
passed = os.environ["MODEL"]
translated = os.environ["TRANSLATED_MODEL"]

for model in (passed, translated):
    response = client.responses.create(model=model, instructions="Be brief.", input="Say hello")
    assert response.object == "response", response
    assert response.id.startswith("resp_"), response.id
    assert response.output_text, response
    assert response.usage.total_tokens > 0, response.usage

    text = ""
    completed = None
    created = None
    for event in client.responses.create(model=model, input="Say hello", stream=True):
        if event.type == "response.created":
            created = event.response
        elif event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.completed":
            completed = event.response
    assert created is not None, "no response.created"
    assert completed is not None, "no response.completed"
    assert created.id == completed.id, (created.id, completed.id)
    assert text and completed.output_text == text, (text, completed.output_text)
    assert completed.usage.total_tokens > 0, completed.usage

    # The SDK's stream helper rebuilds the response from the events, checking their order,
    # indices and item identities.
    with client.responses.stream(model=model, input="Say hello") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text, final

kept = client.responses.create(model=passed, input="Keep me")
got = client.responses.retrieve(kept.id)
assert got.id == kept.id, (got.id, kept.id)
assert got.output_text, got
follow_up = client.responses.create(model=passed, input="And then?", previous_response_id=got.id)
assert follow_up.output_text, follow_up
client.responses.delete(got.id)
try:
    client.responses.retrieve(got.id)
    sys.exit("a deleted response was found")
except openai.NotFoundError as error:
    assert error.status_code == 404, error

# A translated model's responses are stored by the gateway: the same calls work on them.
first = client.responses.create(model=translated, input="I am Ann.")
assert first.store is True, first
got = client.responses.retrieve(first.id)
assert got.id == first.id and got.output_text == first.output_text, (got, first)
items = client.responses.input_items.list(first.id)
assert [item.type for item in items.data] == ["message"], items
assert items.data[0].content[0].text == "I am Ann.", items
follow_up = client.responses.create(model=translated, input="Who am I?", previous_response_id=first.id)
assert follow_up.previous_response_id == first.id, follow_up
assert follow_up.output_text, follow_up
with client.responses.stream(model=translated, input="Again?", previous_response_id=follow_up.id) as stream:
    for _ in stream:
        pass
    streamed = stream.get_final_response()
assert client.responses.retrieve(streamed.id).output_text == streamed.output_text, streamed
client.responses.delete(first.id)
try:
    client.responses.retrieve(first.id)
    sys.exit("a deleted translated response was found")
except openai.NotFoundError as error:
    assert error.status_code == 404, error
try:
    client.responses.create(model=translated, input="x", previous_response_id=first.id)
    sys.exit("a deleted response was continued")
except openai.BadRequestError as error:
    assert error.status_code == 400, error

try:
    client.responses.create(model="no-such-model", input="x")
    sys.exit("an unknown model was served")
except openai.BadRequestError as error:
    assert error.status_code == 400, error

print("openai SDK Responses checks passed")
