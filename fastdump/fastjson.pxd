# C types of fastjson.py, for Cython's pure-Python mode: see fastread.pxd.
import cython

from fastdump.fastread cimport RawDataset, _get16, _get32, decode_text, i64

cdef int _DS, _TEXT_MULTI, _ASCII_MULTI, _IS, _UI, _TEXT_SINGLE, _PN, _US, _UL, _SS, _SL
cdef dict _KIND

cdef class _Converter:
    cdef str path
    cdef Py_ssize_t inline_max
    cdef public list warnings

    cdef dict bulk(self, str vr, Py_ssize_t offset, Py_ssize_t length)
    @cython.locals(out=dict, latin1=bint, big=bint, converters=dict, vr=str, offset=Py_ssize_t,
                   length=Py_ssize_t, values=list)
    cdef dict dataset(self, RawDataset ds, str where)
    cdef dict rejected(self, RawDataset ds, object tag, str vr, bytes value, str where,
                       str error)
    cdef dict binary(self, str vr, object value, Py_ssize_t offset, Py_ssize_t length)

cdef list _listed(list items)
cpdef list _ascii_multi(bytes value, object encodings, bint latin1)
cpdef list _ae(bytes value, object encodings, bint latin1)
@cython.locals(text=str)
cpdef list _ui(bytes value, object encodings, bint latin1)
cpdef list _ur(bytes value, object encodings, bint latin1)
@cython.locals(text=str)
cpdef list _text_multi(bytes value, object encodings, bint latin1)
cpdef list _text_single(bytes value, object encodings, bint latin1)
@cython.locals(names=list, out=list, name=str, groups=list, comps=dict)
cpdef list _pn(bytes value, object encodings, bint latin1)
@cython.locals(text=str, items=list, out=list, item=str, number=double)
cpdef list _ds(bytes value, object encodings, bint latin1)
@cython.locals(items=list, out=list, item=bytes)
cpdef list _is(bytes value, object encodings, bint latin1)
@cython.locals(number=i64)
cdef list _value_of(int kind, str vr, bytes value, object encodings, bint latin1, bint big,
                    dict converters)
