// Boost.JSON compiled into the fuzz build (instrumented), instead of linking Debian's library.
#include <boost/json/src.hpp>
