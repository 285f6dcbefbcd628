"""The events of an OpenAI-compatible stream: a text delta from the stream's template is the
event the general chunk writer makes for it."""

from __future__ import annotations

import json

import pytest

from backend.assistants.openai_compat import _chunk, _text_chunks

HOSTILE_MODEL = 'sales \\u0000text\\u0000" </script>'


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "",
        'quotes " and \\ backslashes',
        "line\nbreaks\r\nand\ttabs",
        "Grüße, 東京, 🙂",
        "\u2028\u2029 separators",
        "\x00text\x00",  # the template's own slot, as a model might send it
        "data: [DONE]\n\n",
    ],
)
@pytest.mark.parametrize("model", ["assistant-1", HOSTILE_MODEL])
def test_a_text_delta_is_the_chunk_the_writer_makes(text: str, model: str) -> None:
    text_chunk = _text_chunks("chatcmpl-abc", model, 1_765_000_000)

    event = text_chunk(text)

    assert event == _chunk("chatcmpl-abc", model, 1_765_000_000, {"content": text})
    assert event.startswith(b"data: ")
    assert event.endswith(b"\n\n")
    assert event.count(b"\n") == 2  # one data line: JSON escapes every line break
    body = json.loads(event.removeprefix(b"data: "))
    assert body["choices"][0]["delta"] == {"content": text}
    assert body["model"] == model
