# Layering: app → api → broker → hsm_backends → common, supervisor → common, kms_plugin → api
# (its client only) and common, pkcs11_front → common (docs/design.md, "Layout and layers").
# Includes are root-relative ("broker/member.h"), so the repository root on the include path
# would let any folder include any other. Instead each layer has an include root of its own,
# build/include/<layer>/<layer> -> <source>/<layer> (a symlink), and a layer's targets get only the
# roots of their own layer and of the layers it uses: an upward include does not compile.
# tests/layering_check.sh (ctest `layering`) checks the same rules and names the file and line.
# tests/ and bench/ may include anything: they have the source root on their include path.
set(HSMB_LAYERS common hsm_backends broker api supervisor pkcs11_front app kms_plugin)
# What each layer may include besides its own folder.
set(HSMB_LAYER_USES_common "")
set(HSMB_LAYER_USES_hsm_backends common)
set(HSMB_LAYER_USES_broker hsm_backends common)
set(HSMB_LAYER_USES_api broker hsm_backends common)
set(HSMB_LAYER_USES_supervisor common)
set(HSMB_LAYER_USES_pkcs11_front common)  # the PKCS#11 module for applications: talks to the broker over HTTP only
set(HSMB_LAYER_USES_app api broker hsm_backends common supervisor)
# The KMS plugin is a client of the broker (api/client), not part of it.
set(HSMB_LAYER_USES_kms_plugin api common)

foreach(layer ${HSMB_LAYERS})
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/include/${layer})
  file(CREATE_LINK ${CMAKE_SOURCE_DIR}/${layer} ${CMAKE_BINARY_DIR}/include/${layer}/${layer} SYMBOLIC)
endforeach()

# hsmb_layer(LAYER), at the top of LAYER's CMakeLists.txt: every target defined in that folder
# and below sees LAYER and the layers it uses.
function(hsmb_layer layer)
  if(NOT layer IN_LIST HSMB_LAYERS)
    message(FATAL_ERROR "hsmb_layer(${layer}): not one of ${HSMB_LAYERS}")
  endif()
  foreach(visible ${layer} ${HSMB_LAYER_USES_${layer}})
    include_directories(${CMAKE_BINARY_DIR}/include/${visible})
  endforeach()
endfunction()

# The same rules as arguments for tests/layering_check.sh: LAYER=USED,USED ...
set(HSMB_LAYER_RULES "")
foreach(layer ${HSMB_LAYERS})
  string(REPLACE ";" "," uses "${HSMB_LAYER_USES_${layer}}")
  list(APPEND HSMB_LAYER_RULES "${layer}=${uses}")
endforeach()
