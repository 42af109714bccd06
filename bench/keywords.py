"""How fast does early warning screen filed texts? Matches generated report texts (10,000 by
default) against the full keyword library and reports texts per second.

    python -m bench.keywords [--texts 10000] [--rounds 3] [--seed 7] [--keywords FILE]

The texts are built from everyday report phrases (flying-wire charging, clutter, broken
lights …), about a third with one to three library words mixed in, about one in six in
English; the seed makes a run repeatable. The best of the rounds is reported; the JSON result
is written to bench/results/ (not under version control).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from bench.results import RESULTS, write_result
from bot.warning import KeywordLibrary, load_library, resolve_keywords_path

PLAIN_ZH = (
    "楼道里有人飞线充电",
    "小区门口乱堆乱放，堵住了消防通道",
    "3号楼北侧路灯不亮已经一周了",
    "人行道塌陷一米见方，晚上很危险",
    "井盖松动，车一过就响",
    "垃圾桶满了没人清运，味道很大",
    "建议在小区里多装几盏路灯",
    "公交站缺个长椅，老人等车不方便",
    "广场舞音响声音太大，晚上十点还在放",
    "菜市场门口占道经营",
    "暖气片不热，屋里只有十五度",
    "小区绿化带被改成了菜地",
    "单元门禁坏了，陌生人随便进出",
    "供水管道漏水，路面结冰了",
    "电动车停在楼道里充电",
    "学校门口早高峰经常堵车",
    "楼下餐馆油烟直排",
    "共享单车堆在盲道上",
    "小区里的健身器材坏了",
    "康乐小区3号楼",
    "已经反映过一次",
    "希望尽快处理",
    "麻烦派人来看看",
    "谢谢",
)
PLAIN_EN = (
    "The street light outside building 3 has been off for a week",
    "Someone is charging an e-bike with a cable from the window",
    "Rubbish has not been collected since Monday",
    "The bus stop needs a bench",
    "There is a pothole at the crossing",
    "Please send someone to have a look",
    "Thank you",
)


def generate_texts(library: KeywordLibrary, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = {
        language: [
            keyword.word.removesuffix("*")
            for category in library.categories
            for keyword in category.keywords
            if keyword.language == language
        ]
        for language in ("zh-Hans", "en")
    }
    texts = []
    for _ in range(count):
        english = rng.random() < 1 / 6
        pool, separator = (PLAIN_EN, ". ") if english else (PLAIN_ZH, "，")
        parts = rng.sample(pool, k=rng.randint(1, 4))
        if rng.random() < 1 / 3:
            for word in rng.sample(words["en" if english else "zh-Hans"], k=rng.randint(1, 3)):
                parts.insert(rng.randint(0, len(parts)), word)
        texts.append(separator.join(parts))
    return texts


def run(
    library: KeywordLibrary, texts: list[str], rounds: int
) -> tuple[list[float], Counter[str]]:
    timings: list[float] = []
    flagged: Counter[str] = Counter()
    for round_ in range(rounds):
        started = time.perf_counter()
        tops = [library.assess(text).top for text in texts]
        timings.append(time.perf_counter() - started)
        if round_ == 0:
            flagged.update(top.category.code for top in tops if top is not None)
    return timings, flagged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.keywords", description=__doc__)
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keywords", help="library file (default: the shipped one)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write JSON")
    args = parser.parse_args(argv)

    path = resolve_keywords_path(args.keywords)
    started = time.perf_counter()
    library = load_library(path)
    load_seconds = time.perf_counter() - started
    texts = generate_texts(library, args.texts, args.seed)
    timings, flagged = run(library, texts, max(args.rounds, 1))
    best = min(timings)
    chars = sum(len(text) for text in texts)
    result = {
        "library": {
            "file": str(path),
            "categories": len(library.categories),
            "keywords": len(library),
            "load_seconds": round(load_seconds, 4),
        },
        "texts": len(texts),
        "characters": chars,
        "seed": args.seed,
        "rounds_seconds": [round(t, 4) for t in timings],
        "best_seconds": round(best, 4),
        "median_seconds": round(statistics.median(timings), 4),
        "texts_per_second": round(len(texts) / best),
        "characters_per_second": round(chars / best),
        "flagged": sum(flagged.values()),
        "flagged_by_category": dict(sorted(flagged.items())),
    }
    out = write_result(args.results, "keywords", result)
    print(
        f"{len(texts)} texts ({chars} characters) against {len(library)} keywords in "
        f"{len(library.categories)} categories: best of {len(timings)} rounds {best:.3f} s, "
        f"{result['texts_per_second']:,} texts/s, {result['characters_per_second']:,} chars/s; "
        f"{result['flagged']} flagged; library loaded in {load_seconds * 1000:.1f} ms"
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
