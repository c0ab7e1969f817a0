// The broker's listening sockets: those its service manager passed, else the configured ones.
#pragma once

#include <memory>

#include "api/http/server.h"
#include "broker/config.h"

namespace hsmb::api {
class tls_context;
}

namespace hsmb::app {

// listen.http.tls's files, loaded (null without tls). Throws config_error naming the key.
std::shared_ptr<const api::tls_context> load_tls(const config& cfg);

// Throws std::runtime_error (config_error for a bad TLS file) with a clear message.
void open_listeners(api::server& server, const config& cfg);

}  // namespace hsmb::app
