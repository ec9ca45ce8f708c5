"""An Urdu conversation in the built-in console, in a real headless Chromium against a live server
(offline model): replies, widgets and progress are laid out right to left, dates inside Urdu text
read in order, and the task widgets' labels are Urdu."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from app.agents.messages import urdu_date
from tests.support.browser import api_tasks, css, screenshot, severe_console_errors, sign_in, wait_for
from tests.support.servers import LiveServer

# Where, on screen, each of two pieces of one rendered node's text is: [left, right] of each.
_RECTS = """
const [root, first, second] = arguments;
const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
const rect = (needle) => {
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf(needle);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + needle.length);
    const box = range.getBoundingClientRect();
    return [box.left, box.right];
  }
  return null;
};
const a = rect(first);
walker.currentNode = root;
return [a, rect(second)];
"""


# The day's and the year's [left, right] on screen, within the text node that holds the whole date.
_DATE_PARTS = """
const [root, date] = arguments;
const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const at = node.data.indexOf(date);
  if (at < 0) continue;
  const box = (start, end) => {
    const range = document.createRange();
    range.setStart(node, start);
    range.setEnd(node, end);
    const rect = range.getBoundingClientRect();
    return [rect.left, rect.right];
  };
  const day = date.split(" ")[0];
  return [box(at, at + day.length), box(at + date.length - 4, at + date.length)];
}
return null;
"""


def _send(driver: Any, text: str) -> None:
    box = css(driver, ".tp-input")[0]
    box.send_keys(text)
    box.send_keys("\n")
    wait_for(driver, lambda d: not css(d, ".tp-console--busy"), "the answer to end")


def _direction(driver: Any, element: Any) -> str:
    return str(driver.execute_script("return getComputedStyle(arguments[0]).direction", element))


def test_an_urdu_conversation_reads_right_to_left_with_its_dates_in_order(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    server = live_server_factory()
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "amna")

    _send(driver, "کل دودھ خریدنا ہے")  # "I have to buy milk tomorrow"
    (task,) = api_tasks(server, "amna")
    assert task["title"] == "دودھ خریدنا"
    due = urdu_date(dt.date.fromisoformat(task["due_date"]))  # e.g. "8 دسمبر 2026"
    reply = wait_for(
        driver,
        lambda d: next((el for el in css(d, ".tp-msg--assistant .tp-bubble") if due in el.text), None),
        "the Urdu reply naming the due date",
    )
    assert _direction(driver, reply) == "rtl"
    assert _direction(driver, css(driver, ".tp-msg--user .tp-bubble")[-1]) == "rtl"
    # The date reads in order for a right-to-left reader: the day rightmost, the year leftmost.
    day, year = driver.execute_script(_DATE_PARTS, reply, due)
    assert year[1] <= day[0], (day, year)
    steps = css(driver, ".tp-workflow .tp-step")
    assert [s.text for s in steps[-2:]] == ["اردو ماہر کے حوالے کیا گیا", "شامل کیا گیا: #1 دودھ خریدنا"]
    assert {_direction(driver, s) for s in steps[-2:]} == {"rtl"}

    # The list: Urdu header and buttons, laid out right to left.
    _send(driver, "میرے کام دکھائیں")
    widget = wait_for(driver, lambda d: next(iter(css(d, ".tp-widget")), None), "the task list")
    assert _direction(driver, widget) == "rtl"
    assert "آپ کے کام · 1" in css(driver, ".tp-w-listview .tp-w-list-status")[-1].text
    labels = [b.text for b in css(driver, ".tp-widget button")]
    assert labels == ["مکمل", "ترمیم", "حذف کریں"], labels
    assert f"آخری تاریخ {due}" in css(driver, ".tp-widget .tp-w-caption")[-1].text
    screenshot(driver, "urdu-conversation.png")

    # Delete's confirm dialog is Urdu too (the thread remembers its language for the action).
    css(driver, '.tp-widget button[data-action="task.delete"]')[-1].click()
    dialog = wait_for(driver, lambda d: next(iter(css(d, '[role="alertdialog"]')), None), "the confirm dialog")
    assert dialog.get_attribute("aria-label") == "یہ کام حذف کریں؟"
    assert [b.text for b in dialog.find_elements("css selector", "button")] == ["منسوخ", "حذف کریں"]
    assert not severe_console_errors(driver)


def test_an_iso_date_inside_urdu_text_is_isolated_and_reads_in_order(
    live_server_factory: Callable[..., LiveServer], browser: Callable[..., Any]
) -> None:
    """A model's Urdu reply may hold an ISO date: the console isolates it left to right. Without the
    isolation the bidi algorithm shows "2026-12-07" as "07-12-2026" after Urdu letters."""
    server = live_server_factory()
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, "amna")
    text = "آخری تاریخ 2026-12-07 ہے"
    rendered, plain = driver.execute_async_script(
        """
        const [text, done] = arguments;
        import("/static/dom.js").then(({ richText }) => {
          const rendered = richText(text);
          const plain = document.createElement("div");
          plain.dir = "rtl";
          plain.textContent = text;
          document.body.append(rendered, plain);
          done([rendered, plain]);
        });
        """,
        text,
    )
    assert _direction(driver, rendered) == "rtl"
    (span,) = rendered.find_elements("css selector", "span.tp-date")
    assert span.text == "2026-12-07" and span.get_attribute("dir") == "ltr"
    (year_left, _), (day_left, _) = driver.execute_script(_RECTS, rendered, "2026", "07")
    assert year_left < day_left, "the isolated date reads 2026-12-07, left to right"
    (year_left, _), (day_left, _) = driver.execute_script(_RECTS, plain, "2026", "07")
    assert year_left > day_left, "without isolation the same text shows the date reversed"
