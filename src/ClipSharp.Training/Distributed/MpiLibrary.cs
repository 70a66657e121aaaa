using System.Runtime.InteropServices;

namespace ClipSharp.Training.Distributed;

/// <summary>
/// The few entry points of Open MPI's C library (<c>libmpi.so.40</c>, Debian's <c>libopenmpi3</c>) data-parallel
/// training calls, bound at run time. Open MPI's handles (communicators, datatypes, operations, error handlers) are
/// pointers to its predefined objects, so <c>MPI_COMM_WORLD</c> is the address of the exported
/// <c>ompi_mpi_comm_world</c>, <c>MPI_FLOAT</c> that of <c>ompi_mpi_float</c>, and so on (MPICH and MS-MPI use integer
/// handles instead; their libraries are not supported).
/// </summary>
internal sealed unsafe class MpiLibrary
{
    /// <summary>The library loaded unless <c>CLIPSHARP_MPI_LIBRARY</c> names another file.</summary>
    public const string DefaultName = "libmpi.so.40";

    public const int Success = 0;
    public const int ThreadSerialized = 2;
    const int MaxString = 256; // MPI_MAX_ERROR_STRING, MPI_MAX_PROCESSOR_NAME, MPI_MAX_LIBRARY_VERSION_STRING

    /// <summary><c>MPI_IN_PLACE</c> in Open MPI's mpi.h.</summary>
    public static readonly nint InPlace = 1;

    public readonly nint CommWorld, Float, Double, Byte, Int64, OpSum, OpMax, ErrorsReturn;

    public readonly delegate* unmanaged<int*, int> Initialized;
    public readonly delegate* unmanaged<int*, int> Finalized;
    public readonly delegate* unmanaged<int*, nint, int, int*, int> InitThread;
    public readonly delegate* unmanaged<int> Finalize;
    public readonly delegate* unmanaged<nint, int*, int> CommRank;
    public readonly delegate* unmanaged<nint, int*, int> CommSize;
    public readonly delegate* unmanaged<nint, nint, int> CommSetErrhandler;
    public readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, int> Allreduce;
    public readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, nint*, int> Iallreduce;
    public readonly delegate* unmanaged<nint*, nint, int> Wait;
    public readonly delegate* unmanaged<nint, int, nint, nint, int, nint, nint, int> Allgather;
    public readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, int> ReduceScatterBlock;
    public readonly delegate* unmanaged<nint, int, nint, int, nint, int> Bcast;
    public readonly delegate* unmanaged<nint, int> Barrier;
    public readonly delegate* unmanaged<nint, int, int> Abort;
    public readonly delegate* unmanaged<int, byte*, int*, int> ErrorString;
    public readonly delegate* unmanaged<byte*, int*, int> ProcessorName;
    public readonly delegate* unmanaged<byte*, int*, int> LibraryVersionString;

    MpiLibrary(nint lib)
    {
        nint Export(string name) => NativeLibrary.TryGetExport(lib, name, out var p) ? p
            : throw new DistributedException($"{Path}: no symbol {name}; ClipSharp needs Open MPI 4 or later (Debian libopenmpi3), whose handles are pointers");
        CommWorld = Export("ompi_mpi_comm_world");
        Float = Export("ompi_mpi_float");
        Double = Export("ompi_mpi_double");
        Byte = Export("ompi_mpi_byte");
        Int64 = Export("ompi_mpi_int64_t");
        OpSum = Export("ompi_mpi_op_sum");
        OpMax = Export("ompi_mpi_op_max");
        ErrorsReturn = Export("ompi_mpi_errors_return");
        Initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        Finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized");
        InitThread = (delegate* unmanaged<int*, nint, int, int*, int>)Export("MPI_Init_thread");
        Finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        CommRank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank");
        CommSize = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size");
        CommSetErrhandler = (delegate* unmanaged<nint, nint, int>)Export("MPI_Comm_set_errhandler");
        Allreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, int>)Export("MPI_Allreduce");
        Iallreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, nint*, int>)Export("MPI_Iallreduce");
        Wait = (delegate* unmanaged<nint*, nint, int>)Export("MPI_Wait");
        Allgather = (delegate* unmanaged<nint, int, nint, nint, int, nint, nint, int>)Export("MPI_Allgather");
        ReduceScatterBlock = (delegate* unmanaged<nint, nint, int, nint, nint, nint, int>)Export("MPI_Reduce_scatter_block");
        Bcast = (delegate* unmanaged<nint, int, nint, int, nint, int>)Export("MPI_Bcast");
        Barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier");
        Abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
        ErrorString = (delegate* unmanaged<int, byte*, int*, int>)Export("MPI_Error_string");
        ProcessorName = (delegate* unmanaged<byte*, int*, int>)Export("MPI_Get_processor_name");
        LibraryVersionString = (delegate* unmanaged<byte*, int*, int>)Export("MPI_Get_library_version");
    }

    /// <summary>The file the library was loaded from.</summary>
    public static string Path => Environment.GetEnvironmentVariable("CLIPSHARP_MPI_LIBRARY") is { Length: > 0 } p ? p : DefaultName;

    static MpiLibrary? loaded;

    /// <summary>Loads the library once per process.</summary>
    /// <exception cref="DistributedException">It is not installed or not Open MPI.</exception>
    public static MpiLibrary Load()
    {
        if (loaded is not null) return loaded;
        string path = Path;
        // Open MPI loads its components (transports, collectives) as plug-ins that expect its own symbols to be
        // global, as they are when a program links it; .NET's loader opens libraries locally, so open it globally first.
        nint lib = Dlopen(path, RtldNow | RtldGlobal);
        if (lib == 0)
        {
            string why = Marshal.PtrToStringUTF8(Dlerror()) ?? "not found";
            throw new DistributedException(
                $"this process was started by an MPI launcher, but Open MPI's library could not be loaded ({why}); " +
                "install Debian's openmpi-bin and libopenmpi3 (apt-get install openmpi-bin libopenmpi3) or set CLIPSHARP_MPI_LIBRARY to its libmpi.so.40");
        }
        return loaded = new MpiLibrary(lib);
    }

    /// <summary>Open MPI's text for an error code.</summary>
    public string Describe(int code)
    {
        byte* buf = stackalloc byte[MaxString + 1];
        int len = 0;
        return ErrorString(code, buf, &len) == Success ? System.Text.Encoding.UTF8.GetString(buf, len) : $"MPI error {code}";
    }

    /// <summary>This host's name as MPI reports it.</summary>
    public string Host()
    {
        byte* buf = stackalloc byte[MaxString + 1];
        int len = 0;
        return ProcessorName(buf, &len) == Success ? System.Text.Encoding.UTF8.GetString(buf, len) : Environment.MachineName;
    }

    /// <summary>The library's version line (first line of <c>MPI_Get_library_version</c>).</summary>
    public string Version()
    {
        byte* buf = stackalloc byte[8 * MaxString + 1]; // Open MPI's MPI_MAX_LIBRARY_VERSION_STRING is 256
        int len = 0;
        if (LibraryVersionString(buf, &len) != Success) return "unknown MPI";
        var text = System.Text.Encoding.UTF8.GetString(buf, len);
        int nl = text.IndexOfAny(['\n', ',']);
        return (nl > 0 ? text[..nl] : text).Trim();
    }

    const int RtldNow = 2, RtldGlobal = 0x100;

    [DllImport("libc", EntryPoint = "dlopen")]
    static extern nint Dlopen([MarshalAs(UnmanagedType.LPUTF8Str)] string file, int mode);

    [DllImport("libc", EntryPoint = "dlerror")]
    static extern nint Dlerror();

    /// <summary>Sets a variable in the native environment (which MPI_Init reads), unless it is already set.</summary>
    public static void SetDefaultEnvironment(string name, string value)
    {
        if (Environment.GetEnvironmentVariable(name) is null) _ = Setenv(name, value, 0);
    }

    [DllImport("libc", EntryPoint = "setenv")]
    static extern int Setenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);
}
