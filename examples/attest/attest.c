/* Collect attestation evidence over a buffer, verify it and print its claims.
 *
 * Uses the "wasmtee_attest" host functions that a wasmtee enclave gives to
 * its guests (see wasmtee/tee/guest_api.py for the contract). Run it with
 *
 *     wasmtee run --enclave sim examples/attest/attest.wasm [BUFFER]
 *
 * The evidence's user data is SHA-256(module hash || BUFFER), so a verifier
 * learns which module asked and what it vouched for. Exit status: 0 when
 * every check passed, 1 when a host function failed, 2 when verification
 * accepted evidence it should reject or rejected evidence it should accept.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATTEST_IMPORT(name) \
    __attribute__((import_module("wasmtee_attest"), import_name(name)))

ATTEST_IMPORT("collect_evidence")
int32_t collect_evidence(const void *buffer, uint32_t buffer_length, void *out,
                         uint32_t out_capacity);
ATTEST_IMPORT("verify_evidence")
int32_t verify_evidence(const void *evidence, uint32_t evidence_length,
                        const void *user_data32);
ATTEST_IMPORT("evidence_field")
int32_t evidence_field(const void *evidence, uint32_t evidence_length, int32_t field,
                       void *out, uint32_t out_capacity);

enum {
    FIELD_MR_ENCLAVE = 0,
    FIELD_MR_SIGNER = 1,
    FIELD_ISV_PROD_ID = 2,
    FIELD_ISV_SVN = 3,
    FIELD_USER_DATA = 4,
    FIELD_DEBUG = 5,
    FIELD_ATTRIBUTES = 6,
    FIELD_REPORT_DATA = 7,
};

static void print_hex(const char *label, const uint8_t *data, int32_t length) {
    printf("%s: ", label);
    for (int32_t i = 0; i < length; i++) printf("%02x", data[i]);
    printf("\n");
}

/* Copy field `field` of `evidence` into `out`; return its length or -1 after printing why. */
static int32_t read_field(const uint8_t *evidence, int32_t length, int32_t field,
                          const char *label, uint8_t *out, uint32_t capacity) {
    int32_t size = evidence_field(evidence, (uint32_t)length, field, out, capacity);
    if (size < 0) {
        fprintf(stderr, "attest: evidence_field(%s) failed with %d\n", label, size);
        return -1;
    }
    return size;
}

static uint32_t little_endian(const uint8_t *data, int32_t length) {
    uint32_t value = 0;
    for (int32_t i = length - 1; i >= 0; i--) value = (value << 8) | data[i];
    return value;
}

int main(int argc, char **argv) {
    const char *buffer = argc > 1 ? argv[1] : "wasmtee attestation example";
    uint32_t buffer_length = (uint32_t)strlen(buffer);

    /* A zero capacity returns the negated size that the evidence needs. */
    int32_t needed = collect_evidence(buffer, buffer_length, NULL, 0);
    if (needed >= 0) {
        fprintf(stderr, "attest: collect_evidence returned %d for a size query\n", needed);
        return 1;
    }
    uint32_t capacity = (uint32_t)-needed;
    uint8_t *evidence = malloc(capacity);
    if (evidence == NULL) {
        fprintf(stderr, "attest: cannot allocate %u bytes\n", capacity);
        return 1;
    }
    int32_t length = collect_evidence(buffer, buffer_length, evidence, capacity);
    if (length <= 0) {
        fprintf(stderr, "attest: collect_evidence failed with %d\n", length);
        return 1;
    }
    printf("buffer: %s\n", buffer);
    printf("evidence_size: %d\n", length);

    uint8_t value[64];
    int32_t size;
    if ((size = read_field(evidence, length, FIELD_MR_ENCLAVE, "MRENCLAVE", value, 64)) < 0)
        return 1;
    print_hex("mr_enclave", value, size);
    if ((size = read_field(evidence, length, FIELD_MR_SIGNER, "MRSIGNER", value, 64)) < 0)
        return 1;
    print_hex("mr_signer", value, size);
    if ((size = read_field(evidence, length, FIELD_ISV_PROD_ID, "ISVPRODID", value, 64)) < 0)
        return 1;
    printf("isv_prod_id: %u\n", little_endian(value, size));
    if ((size = read_field(evidence, length, FIELD_ISV_SVN, "ISVSVN", value, 64)) < 0)
        return 1;
    printf("isv_svn: %u\n", little_endian(value, size));
    if ((size = read_field(evidence, length, FIELD_ATTRIBUTES, "ATTRIBUTES", value, 64)) < 0)
        return 1;
    print_hex("attributes_flags_le", value, size);
    if ((size = read_field(evidence, length, FIELD_DEBUG, "debug", value, 64)) < 0)
        return 1;
    printf("debug: %u\n", value[0]);
    if ((size = read_field(evidence, length, FIELD_REPORT_DATA, "REPORTDATA", value, 64)) < 0)
        return 1;
    print_hex("report_data", value, size);

    uint8_t user_data[32];
    if (read_field(evidence, length, FIELD_USER_DATA, "user data", user_data, 32) != 32)
        return 1;
    print_hex("user_data", user_data, 32);

    /* The user data read above came from verified evidence, so verification must pass. */
    int32_t verdict = verify_evidence(evidence, (uint32_t)length, user_data);
    printf("verify: %s\n", verdict == 0 ? "ok" : "failed");
    if (verdict != 0) return 2;

    /* Wrong user data and a flipped byte in the quote must both be rejected. */
    uint8_t wrong_user_data[32];
    memcpy(wrong_user_data, user_data, 32);
    wrong_user_data[0] ^= 1;
    int32_t wrong_verdict = verify_evidence(evidence, (uint32_t)length, wrong_user_data);
    printf("verify_wrong_user_data: %s\n", wrong_verdict == 0 ? "accepted" : "rejected");
    evidence[length / 2] ^= 1;
    int32_t tampered_verdict = verify_evidence(evidence, (uint32_t)length, user_data);
    printf("verify_tampered: %s\n", tampered_verdict == 0 ? "accepted" : "rejected");
    free(evidence);
    return (wrong_verdict != 0 && tampered_verdict != 0) ? 0 : 2;
}
