#include "tether/common/timeouts.hpp"

#include <algorithm>

#include "tether/common/uv_kit.hpp"

namespace tether::uv {

// The timeouts of one duration, in deadline order, and the one timer armed for the first.
struct Timeout::List {
  List(Timeouts& owner, uv_loop_t* loop, uint64_t ms) : owner(owner), timer(loop), duration_ms(ms) {
    if (timer) timer->data = this;
  }
  void unlink(Timeout& t) {
    (t.prev_ != nullptr ? t.prev_->next_ : head) = t.next_;
    (t.next_ != nullptr ? t.next_->prev_ : tail) = t.prev_;
    t.prev_ = t.next_ = nullptr;
    t.list_ = nullptr;
  }
  void push(Timeout& t) {
    t.prev_ = tail;
    t.next_ = nullptr;
    (tail != nullptr ? tail->next_ : head) = &t;
    tail = &t;
    t.list_ = this;
  }
  void start(uint64_t delay) {
    if (!timer) return;
    uv_timer_start(
        timer.get(), [](uv_timer_t* h) { static_cast<List*>(h->data)->owner.fire(*static_cast<List*>(h->data)); },
        delay, 0);
  }

  Timeouts& owner;
  Handle<uv_timer_t> timer;
  uint64_t duration_ms;
  Timeout* head = nullptr;
  Timeout* tail = nullptr;
};

void Timeout::cancel() {
  if (list_ == nullptr) return;
  List& list = *list_;
  list.unlink(*this);
  // An empty list stops its timer, so that a loop left with no connection can end (a drain); one
  // that still has entries keeps it armed for a deadline that may have gone, and fire() re-arms.
  if (list.head == nullptr && list.timer) uv_timer_stop(list.timer.get());
}

Timeouts::Timeouts(uv_loop_t* loop) : loop_(loop) {}

Timeouts::~Timeouts() {
  for (auto& [ms, list] : lists_) {
    while (list->head != nullptr) list->unlink(*list->head);
  }
}

void Timeouts::arm(Timeout& t, uint64_t ms) {
  // At least a millisecond: a timeout armed from its own callback with 0 would otherwise be due
  // again within the same fire() and never let the loop go on.
  ms = std::max<uint64_t>(ms, 1);
  t.cancel();
  auto& slot = lists_[ms];
  if (!slot) slot = std::make_unique<Timeout::List>(*this, loop_, ms);
  Timeout::List& list = *slot;
  t.due_ = uv_now(loop_) + ms;
  const bool was_empty = list.head == nullptr;
  list.push(t);
  // A list that had entries has its timer armed for an earlier deadline already (or for one that
  // was cancelled since: fire() then finds nothing due and re-arms for the first real one).
  if (was_empty) list.start(ms);
}

void Timeouts::fire(Timeout::List& list) {
  const uint64_t now = uv_now(loop_);
  // Entries armed by the callbacks are due at now + duration (>= 1 ms): the loop ends.
  while (list.head != nullptr && list.head->due_ <= now) {
    Timeout& t = *list.head;
    list.unlink(t);
    t.callback_(t);  // may arm, cancel or destroy any Timeout, this one included
  }
  if (list.head != nullptr) list.start(list.head->due_ - now);
}

}  // namespace tether::uv
