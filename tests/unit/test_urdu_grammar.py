"""The offline model's Urdu grammar: requests as Urdu speakers write them → the task they ask for.

Each row: the request, then the title a native reader accepts as a task's name (a noun phrase with
the verb in its dictionary form: "دودھ خریدنا", "ڈاکٹر کو فون کرنا"; never the sentence's oblique
"خریدنے" of "… خریدنے کا کام"), the due date and the priority. "Today" is Sunday 2026-11-22.
The same table runs over real HTTP against the offline model in tests/live/test_urdu_live.py.
"""

from __future__ import annotations

import datetime as dt

import pytest

from app.agents.offline.intents import is_roman_urdu, language_of, parse

TODAY = dt.date(2026, 11, 22)  # a Sunday
D = dt.date
TOMORROW, DAY_AFTER, NEXT_FRIDAY = D(2026, 11, 23), D(2026, 11, 24), D(2026, 11, 27)

# request, title, due date, priority (None: the default, medium)
URDU: list[tuple[str, str, dt.date | None, str | None]] = [
    ("دودھ خریدنے کا کام شامل کریں", "دودھ خریدنا", None, None),
    ("ڈاکٹر کو فون کرنے کا کام شامل کریں", "ڈاکٹر کو فون کرنا", None, None),
    ("کل دودھ خریدنا ہے", "دودھ خریدنا", TOMORROW, None),
    ("مجھے کل امی کو فون کرنا ہے", "امی کو فون کرنا", TOMORROW, None),
    ("پرسوں بجلی کا بل جمع کرانا ہے", "بجلی کا بل جمع کرانا", DAY_AFTER, None),
    ("اگلے جمعہ تک رپورٹ بھیجنی ہے، ضروری ہے", "رپورٹ بھیجنا", NEXT_FRIDAY, "high"),
    ("کل اہم: رپورٹ جمع کرنے کا کام شامل کریں", "رپورٹ جمع کرنا", TOMORROW, "high"),
    ("یاد دلائیں کہ پرسوں گاڑی کی سروس کروانی ہے", "گاڑی کی سروس کروانا", DAY_AFTER, None),
    ("آج شام سبزی لانے کا کام شامل کر دیں", "سبزی لانا", TODAY, None),
    ("ضروری: کل صبح تک کرایہ ادا کرنا ہے", "کرایہ ادا کرنا", TOMORROW, "high"),
    ("پاسپورٹ کی تجدید کا کام شامل کریں، اگلے مہینے", "پاسپورٹ کی تجدید", D(2026, 12, 22), None),
    ("5 دسمبر تک ٹیکس ریٹرن جمع کرانے کا کام درج کریں", "ٹیکس ریٹرن جمع کرانا", D(2026, 12, 5), None),
    ("۱۵ دسمبر کو ابو کی سالگرہ کا تحفہ خریدنا ہے", "ابو کی سالگرہ کا تحفہ خریدنا", D(2026, 12, 15), None),
    ("جمعہ کو نماز کے بعد دوستوں سے ملنا ہے", "نماز کے بعد دوستوں سے ملنا", NEXT_FRIDAY, None),
    ("اگلے ہفتے بچوں کی فیس جمع کروانی ہے", "بچوں کی فیس جمع کروانا", D(2026, 11, 29), None),
    ("3 دن بعد کتاب واپس کرنی ہے", "کتاب واپس کرنا", D(2026, 11, 25), None),
    ("دو ہفتے بعد دانتوں کے ڈاکٹر کے پاس جانا ہے", "دانتوں کے ڈاکٹر کے پاس جانا", D(2026, 12, 6), None),
    ("نیا کام: گھر کی صفائی کرنا", "گھر کی صفائی کرنا", None, None),
    ("کم ترجیح: الماری ٹھیک کرنے کا کام شامل کریں", "الماری ٹھیک کرنا", None, "low"),
    ("غیر ضروری: پرانے کپڑے عطیہ کرنے کا کام شامل کریں", "پرانے کپڑے عطیہ کرنا", None, "low"),
    ("بہت ضروری ہے، آج رات تک پریزنٹیشن تیار کرنی ہے", "پریزنٹیشن تیار کرنا", TODAY, "high"),
    ("منگل کو پلمبر کو بلانا ہے", "پلمبر کو بلانا", D(2026, 11, 24), None),
    ("اگلے پیر کو بینک جانا ہے، اہم", "بینک جانا", D(2026, 11, 23), "high"),
    ("ہفتے کو گاڑی دھونی ہے", "گاڑی دھونا", D(2026, 11, 28), None),
    ("اتوار کو نانی سے ملنے جانا ہے", "نانی سے ملنے جانا", D(2026, 11, 29), None),
    ("مہینے کے آخر میں گیس کا بل ادا کرنا ہے", "گیس کا بل ادا کرنا", D(2026, 11, 30), None),
    ("براہ کرم دوائی لینے کی یاد دہانی شامل کریں", "دوائی لینا", None, None),
    ("کل پانی کا بل جمع کرانے کا کام شامل کریں #گھر", "پانی کا بل جمع کرانا", TOMORROW, None),
    ("2026-12-10 تک ویزا کی درخواست دینی ہے", "ویزا کی درخواست دینا", D(2026, 12, 10), None),
    ("میری فہرست میں استری کرنے کا کام شامل کریں", "استری کرنا", None, None),
    ("فوری: کمپنی کو ای میل بھیجنے کا کام شامل کریں", "کمپنی کو ای میل بھیجنا", None, "high"),
    ("جمعرات کو اسکول میں والدین کی میٹنگ میں جانا ہے", "اسکول میں والدین کی میٹنگ میں جانا", D(2026, 11, 26), None),
    ("پرسوں تک درزی سے کپڑے لینے ہیں", "درزی سے کپڑے لینا", DAY_AFTER, None),
]

# Roman Urdu, as many Urdu speakers type it: the title keeps their spelling
ROMAN: list[tuple[str, str, dt.date | None, str | None]] = [
    ("kal doodh lena hai", "Doodh lena", TOMORROW, None),
    ("parson bijli ka bill jama karwana hai", "Bijli ka bill jama karwana", DAY_AFTER, None),
    ("mujhe kal ammi ko call karni hai", "Ammi ko call karna", TOMORROW, None),
    ("agle jumma tak report bhejni hai, zaroori hai", "Report bhejna", NEXT_FRIDAY, "high"),
    ("doctor ko phone karne ka kaam add karo", "Doctor ko phone karna", None, None),
    ("yaad dilao ke aaj raat dawai leni hai", "Dawai lena", TODAY, None),
    ("aaj sabzi lani hai, ahem", "Sabzi lana", TODAY, "high"),
    ("agle hafte gari ki service karwani hai", "Gari ki service karwana", D(2026, 11, 29), None),
    ("3 din baad kitab wapas karni hai", "Kitab wapas karna", D(2026, 11, 25), None),
    ("kapre istri karne ka kaam add kar do, koi jaldi nahi", "Kapre istri karna", None, "low"),
]


@pytest.mark.parametrize(("request_text", "title", "due", "priority"), URDU, ids=[row[0] for row in URDU])
def test_an_urdu_request_becomes_a_task_a_native_reader_accepts(
    request_text: str, title: str, due: dt.date | None, priority: str | None
) -> None:
    intent = parse(request_text, TODAY)
    assert (intent.kind, intent.language, intent.problem) == ("add", "ur", None)
    assert (intent.title, intent.due_date, intent.priority) == (title, due, priority)


@pytest.mark.parametrize(("request_text", "title", "due", "priority"), ROMAN, ids=[row[0] for row in ROMAN])
def test_a_roman_urdu_request_becomes_the_same_task(
    request_text: str, title: str, due: dt.date | None, priority: str | None
) -> None:
    assert is_roman_urdu(request_text)
    intent = parse(request_text, TODAY)
    assert (intent.kind, intent.problem) == ("add", None)
    assert (intent.title, intent.due_date, intent.priority) == (title, due, priority)


def test_the_table_is_big_enough_and_urdu() -> None:
    assert len(URDU) >= 30 and len(ROMAN) >= 10
    assert all(language_of(row[0]) == "ur" and language_of(row[1]) == "ur" for row in URDU)


@pytest.mark.parametrize(
    "english",
    ["add a task to buy milk tomorrow", "call the dentist on friday", "kale salad for lunch", "ask Kal about the hike"],
)
def test_english_is_not_taken_for_roman_urdu(english: str) -> None:
    assert not is_roman_urdu(english)


def test_an_urdu_question_about_today_is_a_list_not_a_task() -> None:
    intent = parse("آج کیا کرنا ہے؟", TODAY)
    assert (intent.kind, intent.due_before, intent.due_after) == ("list", TODAY, TODAY)
    assert parse("کل پانی کا بل جمع کرانے کا کام شامل کریں #گھر", TODAY).tags == ["گھر"]
    assert parse("میرے کام دکھائیں", TODAY).kind == "list"
    assert parse("کام 3 مکمل کریں", TODAY).number == 3


def test_a_date_that_does_not_exist_is_explained_in_urdu() -> None:
    intent = parse("2026-02-30 تک کرایہ ادا کرنا ہے", TODAY)
    assert intent.kind == "add" and intent.due_date is None
    assert intent.problem is not None and "2026-02-30" in intent.problem and language_of(intent.problem) == "ur"
    assert parse("31 فروری کو بل جمع کرانا ہے", TODAY).problem
