// Boost.JSON and Boost.URL are used header-only; their out-of-line parts are compiled here,
// once for the whole program.
#include <boost/json/src.hpp>
#include <boost/url/src.hpp>
