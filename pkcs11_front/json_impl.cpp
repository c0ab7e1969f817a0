// Boost.JSON compiled into the module (header-only mode), so the module carries its own copy,
// hidden, and an application's Boost, if any, is never involved.
#include <boost/json/src.hpp>
