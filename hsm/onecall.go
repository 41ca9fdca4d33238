package hsm

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

// One entry of a PKCS#11 attribute template as the standard lays it out on
// Unix (CK_ULONG is unsigned long, default packing).
typedef struct {
	unsigned long type;
	void *value;
	unsigned long len;
} kh_attribute;

typedef unsigned long (*kh_get_attribute_value)(unsigned long, unsigned long, kh_attribute *, unsigned long);

// kh_lookup returns the address of sym in module if module is already
// loaded in the process (it is never loaded here), or NULL.
static void *kh_lookup(const char *module, const char *sym) {
	void *h = dlopen(module, RTLD_NOW | RTLD_NOLOAD);
	if (h == NULL) {
		return NULL;
	}
	void *f = dlsym(h, sym);
	dlclose(h); // the reference NOLOAD took; the module's owner keeps it loaded
	return f;
}

// kh_get_value reads one attribute into buf with one call.
static unsigned long kh_get_value(void *fn, unsigned long session, unsigned long object,
		unsigned long type, void *buf, unsigned long size, unsigned long *len) {
	kh_attribute a = { type, buf, size };
	unsigned long rv = ((kh_get_attribute_value)fn)(session, object, &a, 1);
	*len = a.len;
	return rv;
}
// A mechanism without parameters, as the standard lays it out on Unix.
typedef struct {
	unsigned long mechanism;
	void *parameter;
	unsigned long len;
} kh_mechanism;

typedef unsigned long (*kh_wrap_key)(unsigned long, kh_mechanism *, unsigned long, unsigned long, unsigned char *, unsigned long *);

// kh_wrap wraps key under wrapping with mechanism (no parameters) into buf
// with one call; *len is buf's size on the way in.
static unsigned long kh_wrap(void *fn, unsigned long session, unsigned long mechanism,
		unsigned long wrapping, unsigned long key, void *buf, unsigned long *len) {
	kh_mechanism m = { mechanism, NULL, 0 };
	return ((kh_wrap_key)fn)(session, &m, wrapping, key, (unsigned char *)buf, len);
}
*/
import "C"

import (
	"unsafe"

	"github.com/miekg/pkcs11"
)

// valueReader reads an attribute's value with one C_GetAttributeValue call
// into a buffer of Go memory. miekg/pkcs11 makes two calls (the first for
// the length; the token decrypts a sensitive value for each) and copies the
// value out of C memory that it frees without clearing. fn is nil where the
// module does not export C_GetAttributeValue; readers then use miekg/pkcs11.
type valueReader struct {
	fn unsafe.Pointer
}

func newValueReader(module string) valueReader {
	return valueReader{fn: lookup(module, "C_GetAttributeValue")}
}

// lookup returns the address of function sym in the PKCS#11 module, which
// miekg/pkcs11 has loaded already, or nil.
func lookup(module, sym string) unsafe.Pointer {
	m, s := C.CString(module), C.CString(sym)
	defer C.free(unsafe.Pointer(m))
	defer C.free(unsafe.Pointer(s))
	return C.kh_lookup(m, s)
}

// result is what a one-call function returns: the length it wrote into a
// buffer of size bytes, or the module's error.
func result(rv, n C.ulong, size int) (int, error) {
	if rv != C.ulong(pkcs11.CKR_OK) {
		return 0, pkcs11.Error(rv)
	}
	if uint64(n) > uint64(size) {
		return 0, pkcs11.Error(pkcs11.CKR_GENERAL_ERROR) // the module broke the standard
	}
	return int(n), nil
}

// read reads attribute typ of obj into buf and returns its length; a value
// longer than buf gives CKR_BUFFER_TOO_SMALL.
func (r valueReader) read(s pkcs11.SessionHandle, obj pkcs11.ObjectHandle, typ uint, buf []byte) (int, error) {
	var n C.ulong
	rv := C.kh_get_value(r.fn, C.ulong(s), C.ulong(obj), C.ulong(typ), unsafe.Pointer(&buf[0]), C.ulong(len(buf)), &n)
	return result(rv, n, len(buf))
}

// keyWrapper wraps a key with one C_WrapKey call into a buffer of Go
// memory. miekg/pkcs11 makes two calls, the first for the length, and
// SoftHSM2 does the whole wrap for each (BenchmarkWrap). fn is nil where the
// module does not export C_WrapKey; wrapping then uses miekg/pkcs11.
type keyWrapper struct {
	fn unsafe.Pointer
}

func newKeyWrapper(module string) keyWrapper {
	return keyWrapper{fn: lookup(module, "C_WrapKey")}
}

// wrap wraps key under wrapping with mechanism (one without parameters)
// into buf and returns the length; a longer result gives
// CKR_BUFFER_TOO_SMALL.
func (w keyWrapper) wrap(s pkcs11.SessionHandle, mechanism uint, wrapping, key pkcs11.ObjectHandle, buf []byte) (int, error) {
	n := C.ulong(len(buf))
	rv := C.kh_wrap(w.fn, C.ulong(s), C.ulong(mechanism), C.ulong(wrapping), C.ulong(key), unsafe.Pointer(&buf[0]), &n)
	return result(rv, n, len(buf))
}
