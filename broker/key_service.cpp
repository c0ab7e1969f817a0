#include "broker/key_service.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/duration.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;

key_service::key_service(asio::io_context& io, member_pool& pool, replication_mode mode, std::uint32_t min_copies)
    : ctx_(io, pool, mode, min_copies), checks_(ctx_), directory_(ctx_, checks_), claims_(ctx_, directory_),
      replication_(ctx_, directory_, checks_), lifecycle_(ctx_, directory_, checks_, replication_, claims_),
      operations_(ctx_, directory_) {}

void key_service::attach() {
  for (std::size_t i = 0; i < ctx_.pool.size(); ++i)
    ctx_.pool.at(i).on_join([this](member& m) -> awaitable<bool> { co_return co_await join(m); });
}

awaitable<bool> key_service::join(member& m) {
  bool loaded = co_await directory_.load_from(m);
  if (!loaded) co_return false;
  if (!ctx_.replicates()) co_return true;
  auto lock = co_await ctx_.admin.lock();
  co_await replication_.reconcile_member(m);
  // What `m` revealed (keys created while the others were down) goes to the others too.
  for (std::size_t i = 0; i < ctx_.pool.size(); ++i)
    if (i != m.index() && ctx_.pool.at(i).usable()) co_await replication_.reconcile_member(ctx_.pool.at(i));
  co_return true;
}

awaitable<void> key_service::auto_rotate(std::chrono::milliseconds every) {
  asio::steady_timer tick(ctx_.io);
  for (;;) {
    tick.expires_after(every);
    co_await tick.async_wait(asio::use_awaitable);
    if (ctx_.pool.serving_count() == 0) continue;
    for (auto& name : ctx_.catalog.names()) {
      auto* e = ctx_.catalog.find(name);
      if (!e || !rotation_due(e->meta, unix_seconds_now())) continue;
      auto r = co_await lifecycle_.rotate_if_due(name);
      if (!r) spdlog::warn("key \"{}\": automatic rotation failed, tried again in {}: {}", name, format_duration(every), r.error().message);
    }
  }
}

awaitable<void> key_service::reconcile() {
  if (!ctx_.replicates()) co_return;
  auto lock = co_await ctx_.admin.lock();
  for (std::size_t i = 0; i < ctx_.pool.size(); ++i)
    if (ctx_.pool.at(i).usable()) co_await replication_.reconcile_member(ctx_.pool.at(i));
}

awaitable<void> key_service::repair() {
  if (!ctx_.replicates()) co_return;
  {
    auto lock = co_await ctx_.admin.lock();
    for (std::size_t i = 0; i < ctx_.pool.size(); ++i)
      if (ctx_.pool.at(i).usable()) co_await replication_.forget_missing_copies(ctx_.pool.at(i));
  }
  co_await reconcile();
}

}  // namespace hsmb
