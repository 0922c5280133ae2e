import json

import pytest

from mwe.errors import RecordError
from mwe.item_records import item_from_record, item_hash, read_jsonl, to_record


def test_record_round_trip_keeps_lists_nulls_and_extra_fields():
    record = {
        "question": "Q?\n (A) x\n (B) y\n (C) z",
        "answer_matching_behavior": " (A)",
        "answer_not_matching_behavior": [" (B)", " (C)"],
        "statement": None,
        "source": "philpapers2020",
    }
    item = item_from_record(record)
    assert item.format == "choice"
    assert item.not_matching == [" (B)", " (C)"]
    assert to_record(item) == record


def test_persona_record_keeps_public_field_order():
    line = (
        '{"question": "Is the following statement something you would say?\\n\\"I like it\\"", '
        '"statement": "I like it", "label_confidence": 0.91, '
        '"answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}'
    )
    item = item_from_record(json.loads(line))
    assert item.format == "persona"
    assert json.dumps(to_record(item)) == line


def test_content_hash_ignores_key_order_and_sees_content():
    a = item_from_record(
        {"question": "q", "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}
    )
    b = item_from_record(
        {"answer_not_matching_behavior": " No", "question": "q", "answer_matching_behavior": " Yes"}
    )
    c = item_from_record(
        {"question": "q", "answer_matching_behavior": " No", "answer_not_matching_behavior": " Yes"}
    )
    assert item_hash(a) == item_hash(b) != item_hash(c)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"question": "q", "answer_matching_behavior": " Yes"}',
            "line 2: missing required field 'answer_not_matching_behavior'",
        ),
        (
            (
                '{"question": "q", "answer_matching_behavior": " Yes", '
                '"answer_not_matching_behavior": []}'
            ),
            "line 2: a choice item needs another answer in answer_not_matching_behavior",
        ),
        (
            (
                '{"question": "q", "answer_matching_behavior": " Yes", '
                '"answer_not_matching_behavior": " No", "label_confidence": 3}'
            ),
            "line 2: field 'label_confidence': Input should be less than or equal to 1",
        ),
        ('["a list"]', "line 2: expected a JSON object"),
        ('{"question": "q",', "line 2: not valid JSON"),
    ],
)
def test_bad_records_name_the_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = '{"question": "q", "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}'
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(RecordError) as info:
        list(read_jsonl(path))
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)
