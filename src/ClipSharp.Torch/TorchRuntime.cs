using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;

namespace ClipSharp;

/// <summary>
/// Process-wide native set-up that has to happen before libtorch runs its first kernel. It runs by itself when the
/// ClipSharp.Torch assembly (or ClipSharp.Training or ClipSharp.Evaluation, which sit on it) is loaded, and never for
/// code that only uses ClipSharp.Core; <see cref="EnsureInitialized"/> is there for code that calls TorchSharp before
/// touching any ClipSharp type.
/// </summary>
/// <remarks>
/// <para><b>MKL's vendor check.</b> libtorch's Linux build links Intel MKL statically and uses it for every float32
/// matrix multiplication. MKL picks its kernels from the CPU's feature flags only when the CPU reports itself as
/// "GenuineIntel"; on any other vendor it takes a generic path. On this project's AMD EPYC (AVX-512) that path reaches
/// 95–130 GFLOP/s where the AVX-512 kernels reach 220–370 GFLOP/s on the same shapes. MKL keeps the answer of its
/// vendor test in one cached integer, read by <c>mkl_serv_intel_cpu_true</c>; setting it to 1 before the first MKL call
/// lets MKL dispatch on the features the CPU actually has. Nothing else changes: the kernels it then picks are the
/// ones it runs on an Intel CPU with the same instruction sets, and the golden parity tests run with them.</para>
/// <para>The cached integer is found by decoding the function's first instruction (<c>mov eax, [rip+disp32]</c>);
/// if libtorch's build does not match that pattern, nothing is written. Set <c>CLIPSHARP_KEEP_MKL_VENDOR_CHECK=1</c>
/// to leave MKL alone. The decision is taken by MKL at its first call, so it only takes effect when ClipSharp.Torch is loaded
/// before any TorchSharp matrix multiplication has run; <see cref="MklDispatch"/> says what happened.</para>
/// </remarks>
public static class TorchRuntime
{
    /// <summary>The environment variable that keeps MKL's vendor check.</summary>
    public const string KeepVendorCheckVariable = "CLIPSHARP_KEEP_MKL_VENDOR_CHECK";

    private static readonly object Gate = new();
    private static bool initialized;

    /// <summary>What the start-up did about MKL's CPU dispatch, for <c>clip info</c> and benchmark reports.</summary>
    public static string MklDispatch { get; private set; } = "not initialised";

#pragma warning disable CA2255 // A library module initializer is deliberate: MKL reads the flag once, at its first call.
    [ModuleInitializer]
    internal static void OnAssemblyLoad()
#pragma warning restore CA2255
    {
        // Nothing may escape a module initializer: it would turn every later use of the assembly into a
        // TypeInitializationException. If libtorch cannot be loaded here, the first real tensor operation reports that
        // with TorchSharp's own error.
        try { EnsureInitialized(); }
#pragma warning disable CA1031 // see above
        catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            MklDispatch = "libtorch not loaded: " + e.Message;
        }
    }

    /// <summary>Loads libtorch and applies the set-up described on the class, once per process.</summary>
    public static void EnsureInitialized()
    {
        lock (Gate)
        {
            if (initialized) return;
            initialized = true;
            torch.InitializeDeviceType(DeviceType.CPU);
            MklDispatch = LiftMklVendorCheck();
        }
    }

    private static unsafe string LiftMklVendorCheck()
    {
        if (Environment.GetEnvironmentVariable(KeepVendorCheckVariable) is { Length: > 0 } keep && keep != "0")
            return $"MKL vendor check kept ({KeepVendorCheckVariable}={keep})";
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return "MKL vendor check untouched (only done for Linux x64)";
        nint handle = dlopen("libtorch_cpu.so", RtldLazy | RtldNoLoad);
        if (handle == 0) return "MKL vendor check untouched (libtorch_cpu.so is not loaded)";
        try
        {
            nint function = dlsym(handle, "mkl_serv_intel_cpu_true");
            if (function == 0) return "MKL vendor check untouched (libtorch has no mkl_serv_intel_cpu_true)";
            // Expected: 8B 05 disp32 = mov eax, [rip+disp32]; 85 C0 = test eax, eax. The cached value is < 0 until
            // MKL's first call, then 0 (other vendor) or 1 (Intel).
            byte* code = (byte*)function;
            if (!(code[0] == 0x8B && code[1] == 0x05 && code[6] == 0x85 && code[7] == 0xC0))
                return "MKL vendor check untouched (unrecognised mkl_serv_intel_cpu_true)";
            int* cached = (int*)(code + 6 + *(int*)(code + 2));
            int before = Volatile.Read(ref *cached);
            if (before == 1) return "MKL dispatches on CPU features (Intel CPU)";
            if (before == 0) return "MKL vendor check already taken by an earlier call: generic kernels on this CPU";
            Volatile.Write(ref *cached, 1);
            return "MKL dispatches on CPU features (vendor check lifted)";
        }
        finally { dlclose(handle); }
    }

    private const int RtldLazy = 0x1, RtldNoLoad = 0x4;

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern nint dlopen([MarshalAs(UnmanagedType.LPUTF8Str)] string file, int mode);

    [DllImport("libc", EntryPoint = "dlsym")]
    private static extern nint dlsym(nint handle, [MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    [DllImport("libc", EntryPoint = "dlclose")]
    private static extern int dlclose(nint handle);
}
