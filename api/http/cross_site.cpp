#include "api/http/cross_site.h"

#include <algorithm>
#include <cctype>
#include <string>

#include <boost/beast/core/string.hpp>

namespace hsmb::api {
namespace {

namespace http = boost::beast::http;

bool listed(const std::vector<std::string>& names, std::string_view value) {
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return boost::beast::iequals(n, value); });
}

// "[::1]:8200" -> {"[::1]", "8200"}; "localhost" -> {"localhost", ""}.
std::pair<std::string_view, std::string_view> split_host(std::string_view h) {
  auto colon = h.rfind(':');
  if (colon == std::string_view::npos || (h.starts_with('[') && h.find(']') > colon)) return {h, {}};
  return {h.substr(0, colon), h.substr(colon + 1)};
}

bool ip_literal(std::string_view name) {
  if (name.starts_with('[') && name.ends_with(']')) return true;  // IPv6
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; });
}

bool host_allowed(std::string_view host, std::string_view listener_host, const server_limits& limits) {
  if (boost::beast::iequals(host, listener_host) || listed(limits.allowed_hosts, host)) return true;
  auto [name, port] = split_host(host);
  auto [own_name, own_port] = split_host(listener_host);
  if (!port.empty() && port != own_port) return false;
  if (listed(limits.allowed_hosts, name)) return true;
  // A rebinding page's Host carries its own name: names other than localhost are refused.
  return ip_literal(name) || boost::beast::iequals(name, "localhost");
}

}  // namespace

std::optional<response> refuse_cross_site(const http_request& m, bool tcp, std::string_view listener_host,
                                          const server_limits& limits) {
  auto origin = m[http::field::origin];
  if (m.find(http::field::origin) != m.end() && !listed(limits.allowed_origins, origin))
    return error_response(403, "requests from browser pages are refused (Origin: " + std::string(origin) +
                                   "); allow an origin with listen.http.allowed_origins");
  if (!tcp) return std::nullopt;
  if (m.find(http::field::host) == m.end()) {
    if (m.version() >= 11) return error_response(400, "HTTP/1.1 request without a Host header");
    return std::nullopt;
  }
  auto host = m[http::field::host];
  if (!host_allowed(host, listener_host, limits))
    return error_response(403, "Host " + std::string(host) + " is not this broker's address; add it to listen.http.allowed_hosts");
  return std::nullopt;
}

}  // namespace hsmb::api
