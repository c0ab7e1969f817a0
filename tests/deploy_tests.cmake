# The deploy/ scripts. quickstart: the README's war story on deploy/quickstart.sh (run from this
# build, in a temporary state folder, on a free port): keys made, hsm1 killed, back, hsm2 killed,
# with keyed requests throughout, none of which may fail.
add_test(NAME quickstart
         COMMAND /bin/bash ${CMAKE_CURRENT_LIST_DIR}/integration/quickstart_test.sh ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
set_tests_properties(quickstart PROPERTIES TIMEOUT 120)

# deploy/kubernetes: manifests parse and pass kubectl's offline decoding and a strict schema of the
# fields they use; the broker configurations pass --check; the probes' commands work on a broker.
add_test(NAME kubernetes_manifests
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/integration/kubernetes_manifests_test.py ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/bin)
