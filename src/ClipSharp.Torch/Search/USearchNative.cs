using System.Runtime.InteropServices;
using Cloud.Unum.USearch;

namespace ClipSharp.Search;

/// <summary>
/// The few functions of USearch's C API (<c>libusearch_c</c>, shipped for linux-x64 in the Cloud.Unum.USearch package)
/// that the approximate index needs. They are declared here rather than used through the package's managed wrapper
/// because that wrapper grows the capacity by one vector on every add (a reallocation each time, so building is
/// quadratic) and cannot reserve capacity, change the search expansion after loading, or view a buffer. The enums and
/// the options struct are the package's own, so they match the native library it ships.
/// </summary>
internal static class USearchNative
{
    const string Library = "libusearch_c";

    [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
    public static extern IntPtr usearch_init(ref IndexOptions options, out IntPtr error);

    [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
    public static extern void usearch_free(IntPtr index, out IntPtr error);

    [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
    public static extern void usearch_reserve(IntPtr index, UIntPtr capacity, out IntPtr error);

    [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
    public static extern unsafe void usearch_add(IntPtr index, ulong key, float* vector, ScalarKind kind, out IntPtr error);

    [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
    public static extern unsafe UIntPtr usearch_search(IntPtr index, float* query, ScalarKind kind, UIntPtr limit, ulong* keys, float* distances, out IntPtr error);

    [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
    public static extern void usearch_save(IntPtr index, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, out IntPtr error);

    [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
    public static extern void usearch_view_buffer(IntPtr index, IntPtr buffer, UIntPtr length, out IntPtr error);

    [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
    public static extern UIntPtr usearch_size(IntPtr index, out IntPtr error);

    [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
    public static extern UIntPtr usearch_dimensions(IntPtr index, out IntPtr error);

    [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
    public static extern UIntPtr usearch_memory_usage(IntPtr index, out IntPtr error);

    [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
    public static extern void usearch_change_expansion_search(IntPtr index, UIntPtr expansion, out IntPtr error);

    /// <summary>Throws when a call reported an error (a static or library-owned C string).</summary>
    public static void Check(IntPtr error, string what)
    {
        if (error != IntPtr.Zero) throw new ClipSharpException($"{what}: {Marshal.PtrToStringUTF8(error)}");
    }
}
