using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace ClipSharp.Training.Distributed;

/// <summary>Where a process sits in a data-parallel run.</summary>
/// <param name="Rank">This process, 0 … WorldSize − 1. Rank 0 coordinates: it listens, reduces, and alone writes files.</param>
/// <param name="WorldSize">Number of processes.</param>
/// <param name="MasterAddress">Host name or address rank 0 listens on and the others connect to.</param>
/// <param name="MasterPort">TCP port of rank 0.</param>
/// <param name="Timeout">How long any single wait may take (connecting, or a peer reaching the same collective) before the run fails.</param>
public sealed record DistributedSettings(int Rank, int WorldSize, string MasterAddress, int MasterPort, TimeSpan Timeout)
{
    /// <summary>Default <see cref="Timeout"/>: long enough for rank 0 to validate and checkpoint while the others wait.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Reads the launcher variables PyTorch's <c>torchrun</c> also uses: <c>RANK</c>, <c>WORLD_SIZE</c>, <c>MASTER_ADDR</c>
    /// (default 127.0.0.1), <c>MASTER_PORT</c> (default 29500); null when <c>WORLD_SIZE</c> is unset or 1.
    /// </summary>
    /// <exception cref="ArgumentException">A variable is set but malformed.</exception>
    public static DistributedSettings? FromEnvironment()
    {
        string? world = Environment.GetEnvironmentVariable("WORLD_SIZE");
        if (string.IsNullOrEmpty(world)) return null;
        int w = ParseEnv("WORLD_SIZE", world);
        if (w == 1) return null;
        int rank = ParseEnv("RANK", Environment.GetEnvironmentVariable("RANK") ?? throw new ArgumentException("WORLD_SIZE is set but RANK is not"));
        var (addr, port) = MasterFromEnvironment();
        var s = new DistributedSettings(rank, w, addr, port, DefaultTimeout);
        s.Validate();
        return s;
    }

    /// <summary><c>MASTER_ADDR</c> (default 127.0.0.1) and <c>MASTER_PORT</c> (default 29500).</summary>
    /// <exception cref="ArgumentException"><c>MASTER_PORT</c> is set but not a number.</exception>
    public static (string Address, int Port) MasterFromEnvironment() =>
        (Environment.GetEnvironmentVariable("MASTER_ADDR") is { Length: > 0 } a ? a : "127.0.0.1",
         Environment.GetEnvironmentVariable("MASTER_PORT") is { Length: > 0 } p ? ParseEnv("MASTER_PORT", p) : 29500);

    static int ParseEnv(string name, string value) =>
        int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v)
            ? v : throw new ArgumentException($"environment variable {name}='{value}' is not a non-negative integer");

    /// <summary>Checks the ranges; throws <see cref="ArgumentException"/> naming the problem.</summary>
    public void Validate()
    {
        if (WorldSize < 1) throw new ArgumentException($"world size {WorldSize} must be at least 1");
        if (Rank < 0 || Rank >= WorldSize) throw new ArgumentException($"rank {Rank} is outside 0…{WorldSize - 1}");
        if (MasterPort is <= 0 or > 65535) throw new ArgumentException($"master port {MasterPort} is not a TCP port");
        if (string.IsNullOrWhiteSpace(MasterAddress)) throw new ArgumentException("master address is empty");
        if (Timeout <= TimeSpan.Zero) throw new ArgumentException("timeout must be positive");
    }
}

/// <summary>A collective failed: a peer disconnected, timed out, or is running something else.</summary>
public sealed class DistributedException(string message, Exception? inner = null) : ClipSharpException(message, inner);

/// <summary>
/// The collectives data-parallel CLIP training needs, over plain TCP: all-reduce (sum), all-gather and broadcast.
/// Rank 0 is the hub: every other rank keeps one connection to it; rank 0 combines contributions in rank order and
/// sends the same bytes back to everyone, so every rank ends a collective with bit-identical results. A handshake checks
/// that all ranks agree on the world size and on a fingerprint of the run (config and architecture), and every
/// message names its collective and size, so ranks that drift apart fail with an error instead of mixing data.
/// A star suits the few machines a CPU run spans; traffic at the hub grows with the number of ranks.
/// </summary>
internal sealed class ProcessGroup : IDisposable
{
    const uint Magic = 0x43505344; // "DSPC"
    readonly NetworkStream[] peers; // rank 0: index = peer rank (index 0 unused); others: [0] = the hub
    readonly Socket[] sockets;
    long sequence;
    float[] reduceBuffer = [];

    ProcessGroup(DistributedSettings settings, Socket[] sockets)
    {
        Settings = settings;
        this.sockets = sockets;
        peers = sockets.Select(s => s is null ? null! : new NetworkStream(s, ownsSocket: false)
        {
            ReadTimeout = (int)Math.Min(int.MaxValue, settings.Timeout.TotalMilliseconds),
            WriteTimeout = (int)Math.Min(int.MaxValue, settings.Timeout.TotalMilliseconds),
        }).ToArray();
    }

    /// <summary>The settings this group was formed with.</summary>
    public DistributedSettings Settings { get; }

    /// <summary>This process's rank.</summary>
    public int Rank => Settings.Rank;

    /// <summary>Number of processes.</summary>
    public int WorldSize => Settings.WorldSize;

    /// <summary>
    /// Forms the group: rank 0 listens on the master port and waits for every other rank; the others connect (retrying
    /// until <see cref="DistributedSettings.Timeout"/>). All ranks must pass the same <paramref name="fingerprint"/>.
    /// </summary>
    /// <exception cref="DistributedException">A rank did not arrive in time, or disagrees on world size, rank or fingerprint.</exception>
    public static ProcessGroup Connect(DistributedSettings settings, string fingerprint, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        var deadline = DateTime.UtcNow + settings.Timeout;
        return settings.Rank == 0 ? Listen(settings, fingerprint, deadline, cancel) : Dial(settings, fingerprint, deadline, cancel);
    }

    static ProcessGroup Listen(DistributedSettings s, string fingerprint, DateTime deadline, CancellationToken cancel)
    {
        var sockets = new Socket[s.WorldSize];
        // Listen on every interface (the master name is for the others to connect to; on many hosts a machine's own
        // name resolves to a loopback address, which remote ranks could not reach).
        using var listener = ListenEverywhere(s.MasterPort);
        var bind = "port " + s.MasterPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            for (int joined = 1; joined < s.WorldSize; joined++)
            {
                Socket peer;
                try
                {
                    var wait = deadline - DateTime.UtcNow;
                    if (wait <= TimeSpan.Zero) throw new OperationCanceledException();
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                    timeout.CancelAfter(wait);
                    peer = listener.AcceptAsync(timeout.Token).AsTask().GetAwaiter().GetResult();
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    var missing = Enumerable.Range(1, s.WorldSize - 1).Where(r => sockets[r] is null);
                    throw new DistributedException($"rank 0 waited {s.Timeout} on {bind}, but rank(s) {string.Join(", ", missing)} never connected");
                }
                peer.NoDelay = true;
                using var stream = new NetworkStream(peer, ownsSocket: false) { ReadTimeout = 30_000, WriteTimeout = 30_000 };
                int rank, world;
                string print;
                try { (rank, world, print) = ReadHello(stream, peer.RemoteEndPoint); }
                catch (DistributedException)
                {
                    // Not a training process (a port scanner, a health check) or one that went away: ignore it.
                    peer.Dispose();
                    joined--;
                    continue;
                }
                string? problem =
                    world != s.WorldSize ? $"it was started with world size {world}, rank 0 with {s.WorldSize}"
                    : rank <= 0 || rank >= s.WorldSize ? $"its rank {rank} is outside 1…{s.WorldSize - 1}"
                    : sockets[rank] is not null ? $"rank {rank} is already connected"
                    : print != fingerprint ? "its config or model differs from rank 0's (the run fingerprints differ)"
                    : null;
                WriteHello(stream, 0, s.WorldSize, problem ?? "");
                if (problem is not null)
                {
                    var from = peer.RemoteEndPoint;
                    peer.Dispose();
                    throw new DistributedException($"a process at {from} cannot join: {problem}");
                }
                sockets[rank] = peer;
            }
            return new ProcessGroup(s, sockets);
        }
        catch
        {
            foreach (var k in sockets) k?.Dispose();
            throw;
        }
    }

    static Socket ListenEverywhere(int port)
    {
        foreach (var family in new[] { AddressFamily.InterNetworkV6, AddressFamily.InterNetwork })
        {
            var socket = new Socket(family, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                if (family == AddressFamily.InterNetworkV6) socket.DualMode = true;
                socket.Bind(new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, port));
                socket.Listen(64);
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                if (family == AddressFamily.InterNetwork) throw new DistributedException($"rank 0 cannot listen on port {port}: {e.Message}", e);
            }
        }
        throw new UnreachableException();
    }

    static ProcessGroup Dial(DistributedSettings s, string fingerprint, DateTime deadline, CancellationToken cancel)
    {
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            cancel.ThrowIfCancellationRequested();
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                socket.ConnectAsync(s.MasterAddress, s.MasterPort, timeout.Token).AsTask().GetAwaiter().GetResult();
                using (var stream = new NetworkStream(socket, ownsSocket: false) { ReadTimeout = (int)Math.Min(int.MaxValue, s.Timeout.TotalMilliseconds), WriteTimeout = 30_000 })
                {
                    WriteHello(stream, s.Rank, s.WorldSize, fingerprint);
                    var (_, _, reply) = ReadHello(stream, socket.RemoteEndPoint);
                    if (reply.Length > 0) throw new DistributedException($"rank 0 at {s.MasterAddress}:{s.MasterPort} refused rank {s.Rank}: {reply}");
                }
                var sockets = new Socket[1];
                sockets[0] = socket;
                return new ProcessGroup(s, sockets);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or IOException && !cancel.IsCancellationRequested)
            {
                socket.Dispose();
                last = e;
                Thread.Sleep(200);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw new DistributedException(
            $"rank {s.Rank} could not reach rank 0 at {s.MasterAddress}:{s.MasterPort} within {s.Timeout} ({last?.Message}). " +
            "Is rank 0 running and the port open? Rank 0 reads the checkpoint and builds the model before it listens, so an error there ends it first: see its log", last);
    }

    static void WriteHello(Stream stream, int rank, int world, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var buf = new byte[16 + bytes.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(buf, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(4), rank);
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(8), world);
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(12), bytes.Length);
        bytes.CopyTo(buf, 16);
        stream.Write(buf);
    }

    static (int Rank, int World, string Text) ReadHello(Stream stream, EndPoint? from)
    {
        Span<byte> head = stackalloc byte[16];
        try { stream.ReadExactly(head); }
        catch (IOException e)
        {
            throw new DistributedException($"{from} closed the connection during the handshake: {e.Message}", e);
        }
        if (BinaryPrimitives.ReadUInt32LittleEndian(head) != Magic) throw new DistributedException($"{from} is not a ClipSharp training process (bad handshake)");
        int len = BinaryPrimitives.ReadInt32LittleEndian(head[12..]);
        if (len is < 0 or > 1 << 20) throw new DistributedException($"{from} sent a malformed handshake");
        var text = new byte[len];
        stream.ReadExactly(text);
        return (BinaryPrimitives.ReadInt32LittleEndian(head[4..]), BinaryPrimitives.ReadInt32LittleEndian(head[8..]), Encoding.UTF8.GetString(text));
    }

    enum Op { AllReduce = 1, AllGather = 2, Broadcast = 3 }

    /// <summary>Sums <paramref name="values"/> over all ranks, in place; every rank gets the same bits (added in rank order).</summary>
    public void AllReduceSum(Span<float> values)
    {
        long seq = ++sequence;
        var bytes = MemoryMarshal.AsBytes(values);
        if (Rank != 0)
        {
            Send(0, Op.AllReduce, seq, bytes);
            Receive(0, Op.AllReduce, seq, bytes);
            return;
        }
        if (reduceBuffer.Length != values.Length) reduceBuffer = new float[values.Length];
        var incoming = reduceBuffer;
        for (int r = 1; r < WorldSize; r++)
        {
            Receive(r, Op.AllReduce, seq, MemoryMarshal.AsBytes(incoming.AsSpan()));
            AddInPlace(values, incoming);
        }
        for (int r = 1; r < WorldSize; r++) Send(r, Op.AllReduce, seq, bytes);
    }

    /// <summary>values[i] += more[i], a vector at a time (the same per-element float additions as a scalar loop).</summary>
    static void AddInPlace(Span<float> values, ReadOnlySpan<float> more)
    {
        var v = MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(values);
        var m = MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(more);
        for (int i = 0; i < v.Length; i++) v[i] += m[i];
        for (int i = v.Length * System.Numerics.Vector<float>.Count; i < values.Length; i++) values[i] += more[i];
    }

    /// <summary>Every rank's <paramref name="local"/> (all of the same length), concatenated in rank order.</summary>
    public byte[] AllGather(ReadOnlySpan<byte> local)
    {
        long seq = ++sequence;
        var all = new byte[local.Length * WorldSize];
        if (Rank != 0)
        {
            Send(0, Op.AllGather, seq, local);
            Receive(0, Op.AllGather, seq, all);
            return all;
        }
        local.CopyTo(all);
        for (int r = 1; r < WorldSize; r++) Receive(r, Op.AllGather, seq, all.AsSpan(r * local.Length, local.Length));
        for (int r = 1; r < WorldSize; r++) Send(r, Op.AllGather, seq, all);
        return all;
    }

    /// <summary>Rank 0's <paramref name="payload"/> on every rank (the others pass null).</summary>
    public byte[] Broadcast(byte[]? payload)
    {
        long seq = ++sequence;
        if (Rank == 0)
        {
            ArgumentNullException.ThrowIfNull(payload);
            var len = new byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(len, payload.Length);
            for (int r = 1; r < WorldSize; r++) { Send(r, Op.Broadcast, seq, len); Send(r, Op.Broadcast, seq, payload); }
            return payload;
        }
        var lenIn = new byte[8];
        Receive(0, Op.Broadcast, seq, lenIn);
        long n = BinaryPrimitives.ReadInt64LittleEndian(lenIn);
        if (n is < 0 or > int.MaxValue) throw new DistributedException($"rank 0 announced a broadcast of {n} bytes");
        var data = new byte[n];
        Receive(0, Op.Broadcast, seq, data);
        return data;
    }

    /// <summary>
    /// Rank 0's <paramref name="source"/> (read to its end) written to every other rank's <paramref name="target"/>, in
    /// 16 MiB chunks, so payloads of any size pass without being held in memory.
    /// </summary>
    public void BroadcastStream(Stream? source, Stream? target)
    {
        const int Chunk = 16 << 20;
        long seq = ++sequence;
        var len = new byte[8];
        if (Rank == 0)
        {
            ArgumentNullException.ThrowIfNull(source);
            BinaryPrimitives.WriteInt64LittleEndian(len, source.Length - source.Position);
            for (int r = 1; r < WorldSize; r++) Send(r, Op.Broadcast, seq, len);
            var buffer = new byte[Chunk];
            int n;
            while ((n = source.Read(buffer, 0, Chunk)) > 0)
                for (int r = 1; r < WorldSize; r++) Send(r, Op.Broadcast, seq, buffer.AsSpan(0, n));
            return;
        }
        ArgumentNullException.ThrowIfNull(target);
        Receive(0, Op.Broadcast, seq, len);
        long remaining = BinaryPrimitives.ReadInt64LittleEndian(len);
        if (remaining < 0) throw new DistributedException($"rank 0 announced a stream of {remaining} bytes");
        var chunk = new byte[(int)Math.Min(Chunk, Math.Max(remaining, 1))];
        while (remaining > 0)
        {
            int n = (int)Math.Min(chunk.Length, remaining);
            Receive(0, Op.Broadcast, seq, chunk.AsSpan(0, n));
            target.Write(chunk, 0, n);
            remaining -= n;
        }
    }

    /// <summary>Waits until every rank has reached this point.</summary>
    public void Barrier() => AllGather([1]);

    void Send(int peer, Op op, long seq, ReadOnlySpan<byte> payload)
    {
        Span<byte> head = stackalloc byte[20];
        BinaryPrimitives.WriteInt32LittleEndian(head, (int)op);
        BinaryPrimitives.WriteInt64LittleEndian(head[4..], seq);
        BinaryPrimitives.WriteInt64LittleEndian(head[12..], payload.Length);
        try
        {
            var s = Stream(peer);
            s.Write(head);
            s.Write(payload);
        }
        catch (IOException e) { throw Lost(peer, op, e); }
        catch (ObjectDisposedException e) { throw Lost(peer, op, e); }
    }

    void Receive(int peer, Op op, long seq, Span<byte> into)
    {
        Span<byte> head = stackalloc byte[20];
        try
        {
            var s = Stream(peer);
            s.ReadExactly(head);
            var gotOp = (Op)BinaryPrimitives.ReadInt32LittleEndian(head);
            long gotSeq = BinaryPrimitives.ReadInt64LittleEndian(head[4..]);
            long gotLen = BinaryPrimitives.ReadInt64LittleEndian(head[12..]);
            if (gotOp != op || gotSeq != seq || gotLen != into.Length)
                throw new DistributedException(
                    $"rank {Rank} and rank {PeerRank(peer)} are out of step: this rank is in {op} #{seq} of {into.Length} bytes, the other sent {gotOp} #{gotSeq} of {gotLen} bytes " +
                    "(different configs, models or frozen parameters on different ranks?)");
            s.ReadExactly(into);
        }
        catch (IOException e) { throw Lost(peer, op, e); } // includes EndOfStreamException
        catch (ObjectDisposedException e) { throw Lost(peer, op, e); }
    }

    NetworkStream Stream(int peer) => Rank == 0 ? peers[peer] : peers[0];

    int PeerRank(int peer) => Rank == 0 ? peer : 0;

    DistributedException Lost(int peer, Op op, Exception e) =>
        new($"rank {Rank}: lost rank {PeerRank(peer)} during {op} ({e.Message}): a process stopped, crashed or waited longer than {Settings.Timeout}. " +
            "Restart every rank with --resume latest to continue from the last checkpoint", e);

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var p in peers) p?.Dispose();
        foreach (var s in sockets) s?.Dispose();
    }
}
