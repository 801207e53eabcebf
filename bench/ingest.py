"""Ingest micro-benchmark: how long the hub takes to validate one inbound WebSocket frame.

    .venv/bin/python bench/ingest.py [--frames 100000] [--runs 5]

Times `hub.events.parse_client_frame` (decode, type, role, data validation) plus the
storability check the inbound path runs after it, over a mix of the frames clients send
most (HRV samples, responses, announcements, notes). Prints the best and median run in
microseconds per frame: the figure to compare before and after a change to the event model.
"""

from __future__ import annotations

import argparse
import statistics
import time

import orjson

from hub.events import parse_client_frame
from hub.safe_json import json_problem

FRAMES = [
    (
        "participant",
        {"type": "hrv_update", "id": "h", "data": {"hrv": 61.5, "improvement": 12.5, "coherence": 0.7}},
    ),
    (
        "participant",
        {"type": "response", "id": "r", "data": {"text": "I feel calm", "prompt_seq": 12, "method": "text"}},
    ),
    (
        "instructor",
        {
            "type": "announcement",
            "id": "a",
            "data": {"message": "Breathe in", "title": "Now", "type": "info"},
        },
    ),
    (
        "instructor",
        {
            "type": "note",
            "id": "n",
            "data": {"content": "steady", "note_type": "insight", "is_important": True},
        },
    ),
    ("instructor", {"type": "technique_changed", "id": "t", "data": {"technique": "Box", "duration": 240}}),
    ("participant", {"type": "feedback", "id": "f", "data": {"message_seq": 3, "feedback_type": "like"}}),
]


def run(frames: int) -> float:
    encoded = [(role, orjson.dumps(frame)) for role, frame in FRAMES]
    started = time.perf_counter()
    for index in range(frames):
        role, raw = encoded[index % len(encoded)]
        event = parse_client_frame(raw, role)
        assert event is not None
        json_problem(event.data)
    return (time.perf_counter() - started) / frames * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = [run(args.frames) for _ in range(args.runs)]
    print(
        f"ingest: {args.frames} frames x {args.runs} runs: best {min(results):.2f} us/frame, "
        f"median {statistics.median(results):.2f} us/frame"
    )


if __name__ == "__main__":
    main()
