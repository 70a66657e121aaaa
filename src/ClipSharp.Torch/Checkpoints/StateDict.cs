using System.Collections;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Checkpoints;

/// <summary>
/// An ordered mapping from parameter/buffer names to CPU tensors, the C# counterpart of a PyTorch
/// <c>state_dict</c>. Insertion order is preserved (it is the order the checkpoint stored the tensors in).
/// The dictionary owns its tensors: they are detached from any dispose scope when added and are disposed
/// by <see cref="Dispose"/>, by <see cref="Remove"/> and when replaced through <see cref="Set"/>.
/// </summary>
public sealed class StateDict : IDisposable, IEnumerable<KeyValuePair<string, Tensor>>
{
    readonly List<string> _order = [];
    readonly Dictionary<string, Tensor> _map = new(StringComparer.Ordinal);
    bool _disposed;

    /// <summary>Number of tensors.</summary>
    public int Count => _map.Count;

    /// <summary>Names in insertion order.</summary>
    public IReadOnlyList<string> Keys => _order;

    /// <summary>Gets the tensor stored under <paramref name="key"/>; throws <see cref="KeyNotFoundException"/> naming the key otherwise.
    /// Setting is the same as <see cref="Set"/>.</summary>
    public Tensor this[string key]
    {
        get => _map.TryGetValue(key, out var t) ? t : throw new KeyNotFoundException($"state_dict has no tensor named '{key}'");
        set => Set(key, value);
    }

    /// <summary>True when a tensor named <paramref name="key"/> exists.</summary>
    public bool ContainsKey(string key) => _map.ContainsKey(key);

    /// <summary>Looks up a tensor without throwing.</summary>
    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out Tensor tensor) => _map.TryGetValue(key, out tensor);

    /// <summary>Adds a new tensor at the end; throws <see cref="ArgumentException"/> when the name is taken.
    /// The tensor is detached from any dispose scope and owned by this dictionary from now on.</summary>
    public void Add(string key, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(tensor);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_map.ContainsKey(key)) throw new ArgumentException($"state_dict already has a tensor named '{key}'", nameof(key));
        _map[key] = tensor.DetachFromDisposeScope();
        _order.Add(key);
    }

    /// <summary>Adds or replaces a tensor. A replaced tensor keeps its position and the old tensor is disposed
    /// (unless it is the very same object).</summary>
    public void Set(string key, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(tensor);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_map.TryGetValue(key, out var old))
        {
            _map[key] = tensor.DetachFromDisposeScope();
            if (!ReferenceEquals(old, tensor)) old.Dispose();
        }
        else Add(key, tensor);
    }

    /// <summary>Removes and disposes the tensor named <paramref name="key"/>; false when absent.</summary>
    public bool Remove(string key)
    {
        if (!_map.Remove(key, out var t)) return false;
        _order.Remove(key);
        t.Dispose();
        return true;
    }

    /// <summary>Removes the tensor named <paramref name="key"/> without disposing it and hands it to the caller.</summary>
    public bool Take(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out Tensor tensor)
    {
        if (!_map.Remove(key, out tensor)) return false;
        _order.Remove(key);
        return true;
    }

    /// <summary>Renames a tensor in place, keeping its position. Throws when the new name is taken.</summary>
    public void Rename(string oldKey, string newKey)
    {
        if (oldKey == newKey) return;
        if (_map.ContainsKey(newKey)) throw new ArgumentException($"state_dict already has a tensor named '{newKey}'", nameof(newKey));
        if (!_map.Remove(oldKey, out var t)) throw new KeyNotFoundException($"state_dict has no tensor named '{oldKey}'");
        _map[newKey] = t;
        _order[_order.IndexOf(oldKey)] = newKey;
    }

    /// <summary>Shapes of all tensors, in order (what ArchitectureInference needs).</summary>
    public IReadOnlyDictionary<string, long[]> Shapes()
    {
        var d = new OrderedShapes();
        foreach (var k in _order) d.Add(k, _map[k].shape);
        return d;
    }

    /// <summary>Total number of elements over all tensors.</summary>
    public long NumElements() => _map.Values.Sum(t => t.numel());

    /// <summary>Enumerates name/tensor pairs in insertion order.</summary>
    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator()
    {
        foreach (var k in _order) yield return new(k, _map[k]);
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Disposes every tensor and empties the dictionary.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _map.Values) t.Dispose();
        _map.Clear();
        _order.Clear();
    }

    sealed class OrderedShapes : IReadOnlyDictionary<string, long[]>
    {
        readonly List<KeyValuePair<string, long[]>> _items = [];
        readonly Dictionary<string, long[]> _map = new(StringComparer.Ordinal);
        public void Add(string k, long[] v) { _items.Add(new(k, v)); _map[k] = v; }
        public long[] this[string key] => _map[key];
        public IEnumerable<string> Keys => _items.Select(i => i.Key);
        public IEnumerable<long[]> Values => _items.Select(i => i.Value);
        public int Count => _items.Count;
        public bool ContainsKey(string key) => _map.ContainsKey(key);
        public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out long[] value) => _map.TryGetValue(key, out value);
        public IEnumerator<KeyValuePair<string, long[]>> GetEnumerator() => _items.GetEnumerator();
        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
