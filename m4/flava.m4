# flava.m4 - the project's own configure checks.

# FLAVA_PKG(VAR, MODULE, DEBIAN-PACKAGE)
# pkg-config check whose failure names the Debian package to install.
AC_DEFUN([FLAVA_PKG], [
  PKG_CHECK_MODULES([$1], [$2], [],
    [AC_MSG_ERROR([$2 was not found by pkg-config; on Debian: apt-get install $3])])
])

# FLAVA_CHECK_DNNL(MAJOR, MINOR)
# oneDNN ships no pkg-config file on Debian: check the header, the version
# macros and the library by hand.
AC_DEFUN([FLAVA_CHECK_DNNL], [
  AC_CHECK_HEADER([oneapi/dnnl/dnnl.h], [],
    [AC_MSG_ERROR([oneDNN headers not found; on Debian: apt-get install libdnnl-dev])])
  AC_MSG_CHECKING([for oneDNN >= $1.$2])
  AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[#include <oneapi/dnnl/dnnl_version.h>]], [[
#if DNNL_VERSION_MAJOR < $1 || (DNNL_VERSION_MAJOR == $1 && DNNL_VERSION_MINOR < $2)
#error too old
#endif
#if DNNL_VERSION_MAJOR >= 3
#error the 3.x API is not supported
#endif
  ]])], [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     AC_MSG_ERROR([oneDNN 2.x, at least $1.$2, is required; on Debian: apt-get install libdnnl-dev])])
  AC_SEARCH_LIBS([dnnl_engine_create], [dnnl], [],
    [AC_MSG_ERROR([libdnnl not found; on Debian: apt-get install libdnnl-dev])])
])

# FLAVA_WARN_CFLAGS: every warning flag the compiler accepts, in WARN_CFLAGS.
AC_DEFUN([FLAVA_WARN_CFLAGS], [
  WARN_CFLAGS=""
  for flag in -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla; do
    AS_VAR_PUSHDEF([cv], [flava_cv_cflag_$flag])
    AC_CACHE_CHECK([whether $CC accepts $flag], [cv], [
      save_CFLAGS="$CFLAGS"; CFLAGS="$CFLAGS -Werror $flag"
      AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])], [AS_VAR_SET([cv], [yes])], [AS_VAR_SET([cv], [no])])
      CFLAGS="$save_CFLAGS"])
    AS_VAR_IF([cv], [yes], [WARN_CFLAGS="$WARN_CFLAGS $flag"])
    AS_VAR_POPDEF([cv])
  done
  AC_SUBST([WARN_CFLAGS])
])
