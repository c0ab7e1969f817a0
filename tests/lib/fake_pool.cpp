#include "tests/lib/fake_pool.h"

#include <stdexcept>
#include <string>

namespace hsmb::test {
using namespace std::chrono_literals;

config fake_config(std::size_t members) {
  config c;
  c.request_timeout = 1s;
  c.call_timeout = 500ms;
  c.probe_interval = 50ms;
  c.idle_probe_interval = 1h;
  c.max_backoff = 400ms;
  c.worker_max_age = 1h;
  for (std::size_t i = 0; i < members; ++i) {
    member_config m;
    m.name = "hsm" + std::to_string(i);
    m.module = "fake";
    m.token_label = m.name;
    m.sessions = 1;
    c.members.push_back(std::move(m));
  }
  return c;
}

fake_pool::fake_pool(std::size_t members, const std::function<void(config&)>& adjust)
    : io_(std::make_shared<boost::asio::io_context>()), io(*io_), cfg(fake_config(members)) {
  if (adjust) adjust(cfg);
  for (auto& m : cfg.members) tokens_.push_back(std::make_shared<fake_token>(m.name));
  pool_ = std::make_unique<member_pool>(io, cfg, member_deps{fake_workers(io, tokens_), time, random});
}

fake_pool::fake_pool(beside b)
    : io_(b.neighbour.io_), io(*io_), time(b.neighbour.time), random(b.neighbour.random), cfg(b.neighbour.cfg),
      tokens_(b.neighbour.tokens_) {
  pool_ = std::make_unique<member_pool>(io, cfg, member_deps{fake_workers(io, tokens_), time, random});
}

fake_pool::~fake_pool() {
  pool_->stop();
  if (io.stopped()) io.restart();
  io.poll();  // what stop() woke ends now; coroutines still asleep are destroyed with io
}

fake_token& fake_pool::token(const std::string& label) {
  for (auto& t : tokens_)
    if (t->label() == label) return *t;
  throw std::invalid_argument("no fake token " + label);
}

bool fake_pool::run_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(5ms);
  }
  return true;
}

void fake_pool::run_for(std::chrono::milliseconds d) {
  if (io.stopped()) io.restart();
  io.run_for(d);
}

bool fake_pool::all_serving() const { return pool_->serving_count() == pool_->size(); }

}  // namespace hsmb::test
